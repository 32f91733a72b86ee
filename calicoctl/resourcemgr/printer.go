package resourcemgr

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// Result is what a get returned, in the shape the printers need: either the
// listing of one kind (List set), or the resources asked for by name.
type Result struct {
	// Kind of the resources (all results of one get share it, except for
	// `get -f` of a mixed file, which yields one Result per document).
	Kind string
	// List is true when the kind was listed rather than fetched by name;
	// YAML/JSON then print a <Kind>List even for zero or one item, as
	// Calico's calicoctl does.
	List bool
	// Revision is the store revision of a listing.
	Revision  string
	Resources []v3.Resource
}

// List is the YAML/JSON shape of a listing: `kind: IPPoolList` with items.
type List struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Items      []v3.Resource `json:"items"`
	Metadata   ListMeta      `json:"metadata"`
}

// ListMeta is a listing's metadata.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// Format is a parsed `-o` value.
type Format struct {
	Kind     string   // "ps", "wide", "yaml", "json", "custom-columns", "go-template"
	Columns  []string // custom-columns
	Template string   // go-template text (go-template-file is read by the caller)
}

// ParseFormat parses calicoctl's `-o` values: ps, wide, yaml (yml), json,
// custom-columns=A,B, go-template=TEMPLATE. go-template-file=PATH is
// returned with the path in Template for the caller to read.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "ps":
		return Format{Kind: "ps"}, nil
	case "wide":
		return Format{Kind: "wide"}, nil
	case "yaml", "yml":
		return Format{Kind: "yaml"}, nil
	case "json":
		return Format{Kind: "json"}, nil
	}
	key, value, _ := strings.Cut(s, "=")
	switch key {
	case "custom-columns":
		if value == "" {
			return Format{}, fmt.Errorf("need to specify at least one column")
		}
		cols := strings.Split(value, ",")
		for i := range cols {
			cols[i] = strings.ToUpper(strings.TrimSpace(cols[i]))
		}
		return Format{Kind: "custom-columns", Columns: cols}, nil
	case "go-template":
		if value == "" {
			return Format{}, fmt.Errorf("need to specify a template")
		}
		return Format{Kind: "go-template", Template: value}, nil
	case "go-template-file":
		if value == "" {
			return Format{}, fmt.Errorf("need to specify a template file")
		}
		return Format{Kind: "go-template-file", Template: value}, nil
	}
	return Format{}, fmt.Errorf("unrecognized output format '%s'", s)
}

// PrintOptions tune the table printers.
type PrintOptions struct {
	// PrintNamespace adds a leading NAMESPACE column to namespaced kinds
	// (set by `get -A` or `-n`, as in Calico).
	PrintNamespace bool
	Lookup         Lookup
}

// Print writes results to w in format f.
func Print(w io.Writer, f Format, results []Result, opts PrintOptions) error {
	switch f.Kind {
	case "ps", "wide", "custom-columns":
		lk := &lazyLookup{lk: opts.Lookup}
		for _, res := range results {
			headings := f.Columns
			if f.Kind != "custom-columns" {
				headings = DefaultHeadings(res.Kind, f.Kind == "wide")
				if k, ok := v3.KindByName(res.Kind); ok && k.Namespaced && opts.PrintNamespace {
					headings = append([]string{"NAMESPACE"}, headings...)
				}
			}
			if err := printTable(w, res.Kind, headings, res.Resources, lk); err != nil {
				return err
			}
		}
		return nil
	case "yaml", "json":
		out, err := encode(f.Kind, results)
		if err != nil {
			return fmt.Errorf("encode resources as %s: %w", f.Kind, err)
		}
		_, err = w.Write(out)
		return err
	case "go-template":
		return printTemplate(w, f.Template, results, opts)
	}
	return fmt.Errorf("unrecognized output format '%s'", f.Kind)
}

// printTable writes one table the way Calico's calicoctl does (tabwriter
// with minimum width 5 and padding 3, a tab after every cell, a blank line
// after the table), so column positions match byte for byte.
func printTable(w io.Writer, kind string, headings []string, rs []v3.Resource, lk *lazyLookup) error {
	t := tableFor(kind)
	cols := make([]columnFunc, len(headings))
	for i, h := range headings {
		f, ok := t.columns[h]
		if !ok {
			return fmt.Errorf("unknown heading %s, valid values are: %s", h, strings.Join(Headings(kind), ", "))
		}
		cols[i] = f
	}
	tw := tabwriter.NewWriter(w, 5, 1, 3, ' ', 0)
	for _, h := range headings {
		fmt.Fprintf(tw, "%s\t", h)
	}
	fmt.Fprintln(tw)
	for _, r := range rs {
		for _, c := range cols {
			// A tab or newline inside a value would break the table.
			fmt.Fprintf(tw, "%s\t", strings.NewReplacer("\t", " ", "\n", " ").Replace(c(r, lk)))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

// encode renders results as YAML or JSON. A listing is a <Kind>List even
// with zero or one item, as Calico prints it; resources fetched by name
// print as v3.EncodeYAML/EncodeJSON render them (alone when there is one).
func encode(format string, results []Result) ([]byte, error) {
	if len(results) == 1 && results[0].List {
		l := listOf(results[0].Kind, results[0].Revision, results[0].Resources)
		if format == "yaml" {
			return yaml.Marshal(l)
		}
		b, err := json.MarshalIndent(l, "", "  ")
		return append(b, '\n'), err
	}
	var all []v3.Resource
	for _, res := range results {
		all = append(all, res.Resources...)
	}
	if format == "yaml" {
		return v3.EncodeYAML(all)
	}
	return v3.EncodeJSON(all)
}

func listOf(kind, revision string, rs []v3.Resource) *List {
	l := &List{APIVersion: v3.APIVersion, Kind: "List", Items: rs, Metadata: ListMeta{ResourceVersion: revision}}
	if kind != "" {
		l.Kind = kind + "List"
	}
	if l.Items == nil {
		l.Items = []v3.Resource{}
	}
	for _, r := range rs {
		setTypeMeta(r)
	}
	return l
}

func setTypeMeta(r v3.Resource) {
	r.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: v3.Group, Version: "v3", Kind: v3.KindOf(r)})
}

// printTemplate runs a user's Go template. As in Calico, the template's data
// is the list of results: one <Kind>List for a listing, else the resources,
// so `{{range .}}{{range .Items}}{{.ObjectMeta.Name}} {{end}}{{end}}` lists
// names.
func printTemplate(w io.Writer, text string, results []Result, opts PrintOptions) error {
	lk := &lazyLookup{lk: opts.Lookup}
	tmpl, err := template.New("get").Funcs(template.FuncMap{
		"join": func(items any, sep string) string { return joinAny(items, sep) },
		"joinAndTruncate": func(items any, sep string, maxLen int) string {
			return truncate(joinAny(items, sep), maxLen)
		},
		"config": func(name string) (string, error) {
			if strings.EqualFold(name, "asnumber") {
				return lk.defaultASNumber(), nil
			}
			return "", fmt.Errorf("unknown config value %q (known: asnumber)", name)
		},
	}).Parse(text)
	if err != nil {
		return fmt.Errorf("parse go-template: %w", err)
	}
	var data []any
	for _, res := range results {
		if res.List {
			data = append(data, listOf(res.Kind, res.Revision, res.Resources))
			continue
		}
		for _, r := range res.Resources {
			setTypeMeta(r)
			data = append(data, r)
		}
	}
	if err := tmpl.Execute(w, data); err != nil {
		return fmt.Errorf("execute go-template: %w", err)
	}
	return nil
}

// joinAny joins the elements of a slice, or the key=value pairs of a map
// (sorted), for templates; anything else prints as with fmt.Sprint.
func joinAny(items any, sep string) string {
	if items == nil {
		return ""
	}
	v := reflect.ValueOf(items)
	var parts []string
	switch v.Kind() {
	case reflect.Map:
		for _, k := range v.MapKeys() {
			parts = append(parts, fmt.Sprintf("%v=%v", k.Interface(), v.MapIndex(k).Interface()))
		}
		sort.Strings(parts)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			parts = append(parts, fmt.Sprint(v.Index(i).Interface()))
		}
	default:
		return fmt.Sprint(items)
	}
	return strings.Join(parts, sep)
}
