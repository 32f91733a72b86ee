package commands

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/calicoctl/resourcemgr"
	"github.com/tabbynet/tabby/datastore"
)

type getFlags struct {
	files         fileFlags
	namespace     string
	allNamespaces bool
	output        string
	export        bool
}

func (c *CLI) newGetCommand() *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get (KIND [NAME...] | -f FILENAME)",
		Short: "Display resources by kind and name, or by file",
		Long: `Display all resources of a kind, the named ones, or the ones named in a file.
Asking for a resource that does not exist is an error (the ones found are
still printed). The kind is case-insensitive and may be plural.

Output formats (-o):
  ps                  table of the kind's main columns (default)
  wide                table with more columns
  custom-columns=A,B  table of the named columns
  yaml, json          the resources; a listing prints as a <Kind>List, and
                      the output is valid input to create, apply and replace
  go-template=T       a Go template over the results ({{range .}}...)
  go-template-file=F  the same, template read from a file`,
		Example: "  calicoctl get ippools\n  calicoctl get bgppeers -o wide\n  calicoctl get ippool default-ipv4-ippool -o yaml\n  calicoctl get workloadendpoints -A",
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runGet(cmd, args, f)
		},
	}
	f.files.register(cmd, "get")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of namespaced resources (default \"default\").")
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "List the requested resources across all namespaces.")
	cmd.Flags().StringVarP(&f.output, "output", "o", "ps", "Output format: ps, wide, custom-columns=..., yaml, json, go-template=..., go-template-file=...")
	cmd.Flags().BoolVar(&f.export, "export", false, "Strip cluster-specific metadata (uid, resourceVersion, creationTimestamp) from resources fetched by name.")
	return cmd
}

func (c *CLI) runGet(cmd *cobra.Command, args []string, f getFlags) error {
	format, err := resourcemgr.ParseFormat(f.output)
	if err != nil {
		return err
	}
	if format.Kind == "go-template-file" {
		text, err := os.ReadFile(format.Template)
		if err != nil {
			return fmt.Errorf("read template file: %w", err)
		}
		format = resourcemgr.Format{Kind: "go-template", Template: string(text)}
	}

	// What to fetch: a listing, names, or the documents of a file.
	var (
		ki        v3.KindInfo
		listNS    string
		keys      []v3.Key
		listing   bool
		nameGiven bool
	)
	switch {
	case f.files.filename != "":
		if len(args) > 0 {
			return fmt.Errorf("give either -f or KIND [NAME...], not both")
		}
		docs, err := c.loadDocuments(cmd, f.files)
		if err != nil {
			return fmt.Errorf("failed to execute command: %w", err)
		}
		for _, d := range docs {
			if err := setNamespace(d.Res, f.namespace); err != nil {
				return fmt.Errorf("%s: %w", d.where(), err)
			}
			keys = append(keys, v3.KeyOf(d.Res))
		}
		nameGiven = true
	case len(args) == 0:
		return fmt.Errorf("give the resources to get: KIND [NAME...] or -f FILENAME")
	default:
		if ki, err = lookupKind(args[0]); err != nil {
			return err
		}
		ns, err := argNamespace(ki, f.namespace, f.allNamespaces)
		if err != nil {
			return err
		}
		if len(args) == 1 {
			listing, listNS = true, ns
			break
		}
		if ki.Namespaced && f.allNamespaces {
			return fmt.Errorf("cannot use --all-namespaces to get named resources: give -n NAMESPACE")
		}
		for _, name := range args[1:] {
			if name == "" {
				return fmt.Errorf("resource name may not be empty")
			}
			keys = append(keys, v3.Key{Kind: ki.Kind, Namespace: ns, Name: name})
		}
		nameGiven = true
	}

	return c.withDatastore(cmd.Context(), func(ctx context.Context, ds datastore.Interface) error {
		var results []resourcemgr.Result
		var errs []error
		if listing {
			lr, err := ds.List(ctx, ki.Kind, listNS)
			if err != nil {
				return fmt.Errorf("failed to get resources: %w", err)
			}
			results = append(results, resourcemgr.Result{Kind: ki.Kind, List: true, Revision: lr.Revision, Resources: lr.Items})
		}
		for _, k := range keys {
			r, err := ds.Get(ctx, k)
			if datastore.IsNotFound(err) {
				errs = append(errs, err)
				continue
			}
			if err != nil {
				return fmt.Errorf("failed to get resources: %w", err)
			}
			if f.export && nameGiven {
				stripClusterMetadata(r)
			}
			// Consecutive resources of one kind share one table.
			if n := len(results); n > 0 && results[n-1].Kind == k.Kind {
				results[n-1].Resources = append(results[n-1].Resources, r)
			} else {
				results = append(results, resourcemgr.Result{Kind: k.Kind, Resources: []v3.Resource{r}})
			}
		}
		if len(results) > 0 {
			opts := resourcemgr.PrintOptions{
				PrintNamespace: f.allNamespaces || f.namespace != "",
				Lookup:         &dsLookup{ctx: ctx, ds: ds},
			}
			if err := resourcemgr.Print(c.Stdout, format, results, opts); err != nil {
				return err
			}
		}
		return errors.Join(errs...)
	})
}

// stripClusterMetadata is --export: what only makes sense in this cluster.
func stripClusterMetadata(r v3.Resource) {
	r.SetUID("")
	r.SetResourceVersion("")
	r.SetCreationTimestamp(metav1.Time{})
	r.SetDeletionTimestamp(nil)
	r.SetDeletionGracePeriodSeconds(nil)
	if ki, ok := v3.KindByName(kindOf(r)); ok && ki.Namespaced {
		r.SetNamespace("")
	}
}

// dsLookup answers the table printers' questions from the datastore.
type dsLookup struct {
	ctx context.Context
	ds  datastore.Interface
}

// defaultASNumber is BGP's default when no BGPConfiguration sets one
// (the first private AS number), as in Calico.
const defaultASNumber = "64512"

func (l *dsLookup) DefaultASNumber() string {
	r, err := l.ds.Get(l.ctx, v3.Key{Kind: "BGPConfiguration", Name: "default"})
	switch {
	case datastore.IsNotFound(err):
		return defaultASNumber
	case err != nil:
		return "unknown"
	}
	if bc, ok := r.(*v3.BGPConfiguration); ok && bc.Spec.ASNumber != nil {
		return bc.Spec.ASNumber.String()
	}
	return defaultASNumber
}
