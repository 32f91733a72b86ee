package commands

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// maxConflictRetries bounds read-modify-write loops that lose races with
// other writers (Calico's calicoctl retries five times too).
const maxConflictRetries = 5

type writeFlags struct {
	files      fileFlags
	namespace  string
	skipExists bool
}

func (c *CLI) newCreateCommand() *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "create -f FILENAME",
		Short: "Create resources by file, directory or stdin",
		Long: `Create the resources in a file, directory or stdin (YAML or JSON, several
documents or a List). Every document is decoded, defaulted and validated, and
checked against the datastore, before anything is written: one bad document
means nothing is created. Creating a resource that exists is an error unless
--skip-exists is given, in which case it counts as created.`,
		Example: "  calicoctl create -f ./pools.yaml\n  cat policy.json | calicoctl create -f -",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runWrite(cmd, actCreate, f)
		},
	}
	f.files.register(cmd, "create")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of namespaced resources that name none (default \"default\").")
	cmd.Flags().BoolVar(&f.skipExists, "skip-exists", false, "Skip over and treat as successful any attempts to create an entry that already exists.")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func (c *CLI) newApplyCommand() *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILENAME",
		Short: "Create or replace resources by file, directory or stdin",
		Long: `Apply the resources in a file, directory or stdin: each is created if it does
not exist and replaced if it does. A resourceVersion in a document makes the
replace conditional on it (a stale one is an error); without one the current
version is replaced. Nothing is written unless every document is valid.`,
		Example: "  calicoctl apply -f ./pools.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runWrite(cmd, actApply, f)
		},
	}
	f.files.register(cmd, "apply")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of namespaced resources that name none (default \"default\").")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func (c *CLI) newReplaceCommand() *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "replace -f FILENAME",
		Short: "Replace existing resources by file, directory or stdin",
		Long: `Replace existing resources with the ones in a file, directory or stdin.
Replacing a resource that does not exist is an error. A resourceVersion in a
document makes the replace conditional on it; without one the current
version is replaced. The complete resource must be given.`,
		Example: "  calicoctl replace -f ./pools.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runWrite(cmd, actReplace, f)
		},
	}
	f.files.register(cmd, "replace")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of namespaced resources that name none (default \"default\").")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// writeOp is what will be done with one document.
type writeOp int

const (
	opSkip   writeOp = iota // exists and --skip-exists
	opCreate                // does not exist
	opUpdate                // exists
)

// planned is one checked document, ready to write.
type planned struct {
	doc    document
	op     writeOp
	fileRV string // resourceVersion the document carried: the update is conditional on it
}

// runWrite is create, apply and replace: check everything, then write in
// order, stopping at the first failure.
func (c *CLI) runWrite(cmd *cobra.Command, act action, f writeFlags) error {
	docs, err := c.loadDocuments(cmd, f.files)
	if err != nil {
		return fmt.Errorf("failed to execute command: %w", err)
	}
	if len(docs) == 0 {
		fmt.Fprintln(c.Stdout, "No resources specified")
		return nil
	}
	kind := singleKind(docs)

	// Offline checks first: a broken file never needs the datastore.
	fileRVs := make([]string, len(docs))
	var problems []string
	for i, d := range docs {
		if err := setNamespace(d.Res, f.namespace); err != nil {
			problems = append(problems, d.where()+": "+err.Error())
			continue
		}
		rv, err := prepareForWrite(d.Res)
		fileRVs[i] = rv
		if err != nil {
			problems = append(problems, d.where()+": "+err.Error())
		}
	}
	problems = append(problems, duplicates(docs)...)
	if len(problems) > 0 {
		return nothingWritten(act, kind, len(docs), problems)
	}

	return c.withDatastore(cmd.Context(), func(ctx context.Context, ds datastore.Interface) error {
		plan, problems, err := preflight(ctx, ds, act, docs, fileRVs, f.skipExists)
		if err != nil {
			return nothingWritten(act, kind, len(docs), []string{err.Error()})
		}
		if len(problems) > 0 {
			return nothingWritten(act, kind, len(docs), problems)
		}
		for i, p := range plan {
			if err := writeOne(ctx, ds, act, p, f.skipExists); err != nil {
				var done, notDone []string
				for _, q := range plan[:i] {
					done = append(done, describePlanned(q))
				}
				for _, q := range plan[i:] {
					notDone = append(notDone, q.doc.String())
				}
				return stoppedHalfway(c.Stdout, act, kind, done, notDone, fmt.Errorf("%s: %w", p.doc.where(), err))
			}
			c.Logger().Info("wrote resource", "action", act.verb, "resource", p.doc.String())
		}
		succeeded(c.Stdout, act, kind, len(plan))
		return nil
	})
}

func describePlanned(p planned) string {
	if p.op == opSkip {
		return p.doc.String() + " (already exists, skipped)"
	}
	return p.doc.String()
}

// setNamespace gives a namespaced resource the -n namespace, or "default",
// when it names none, and refuses namespaces where they do not belong, as
// Calico's calicoctl does.
func setNamespace(r v3.Resource, cliNS string) error {
	kind := kindOf(r)
	ki, _ := v3.KindByName(kind)
	ns := r.GetNamespace()
	if !ki.Namespaced {
		if ns != "" {
			return fmt.Errorf("namespace should not be specified for a non-namespaced resource. %s is not a namespaced resource", kind)
		}
		if cliNS != "" {
			return fmt.Errorf("%s is not namespaced: do not give --namespace", kind)
		}
		return nil
	}
	switch {
	case ns == "" && cliNS != "":
		r.SetNamespace(cliNS)
	case ns == "":
		r.SetNamespace("default")
	case cliNS != "" && ns != cliNS:
		return fmt.Errorf("resource namespace does not match client namespace. %s != %s", ns, cliNS)
	}
	return nil
}

// prepareForWrite keeps only the metadata a user may set (name, namespace,
// labels, annotations), applies the defaults and validates. It returns the
// resourceVersion the document carried, which makes an update conditional.
func prepareForWrite(r v3.Resource) (fileRV string, err error) {
	fileRV = r.GetResourceVersion()
	// A document saved with `get -o yaml` from another cluster carries that
	// cluster's uid and timestamps; the datastore sets its own.
	r.SetResourceVersion("")
	r.SetUID("")
	r.SetCreationTimestamp(metav1.Time{})
	r.SetDeletionTimestamp(nil)
	r.SetDeletionGracePeriodSeconds(nil)
	r.SetGeneration(0)
	r.SetManagedFields(nil)
	r.SetSelfLink("")
	v3.SetDefaults(r)
	return fileRV, v3.Validate(r)
}

// duplicates reports resources given twice in one input: the second write
// would silently undo the first.
func duplicates(docs []document) []string {
	seen := map[v3.Key]document{}
	var problems []string
	for _, d := range docs {
		k := v3.KeyOf(d.Res)
		if first, ok := seen[k]; ok {
			problems = append(problems, fmt.Sprintf("%s: %s is also given in %s", d.where(), v3.Describe(d.Res), first.where()))
			continue
		}
		seen[k] = d
	}
	return problems
}

// preflight checks every document against the datastore before anything is
// written: existence (create, replace), the resourceVersion a document
// carries, fields that cannot change, and IP pool overlaps with the stored
// pools and with the other pools of the input. It returns the plan, the
// problems found, or an error when the datastore cannot be read.
func preflight(ctx context.Context, ds datastore.Interface, act action, docs []document, fileRVs []string, skipExists bool) ([]planned, []string, error) {
	plan := make([]planned, len(docs))
	var problems []string
	for i, d := range docs {
		p := planned{doc: d, fileRV: fileRVs[i]}
		key := v3.KeyOf(d.Res)
		cur, err := ds.Get(ctx, key)
		if datastore.IsNotFound(err) {
			cur, err = nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("check %s: %w", d, err)
		}
		switch {
		case cur == nil && act == actReplace:
			problems = append(problems, fmt.Sprintf("%s: %s: %v", d.where(), key, datastore.ErrNotFound))
		case cur == nil:
			p.op = opCreate
		case act == actCreate && skipExists:
			p.op = opSkip
		case act == actCreate:
			problems = append(problems, fmt.Sprintf("%s: %s: %v", d.where(), key, datastore.ErrAlreadyExists))
		default:
			p.op = opUpdate
			if p.fileRV != "" && p.fileRV != cur.GetResourceVersion() {
				problems = append(problems, fmt.Sprintf("%s: %v", d.where(), staleError(key, p.fileRV, cur.GetResourceVersion())))
			}
			if err := checkImmutable(cur, d.Res); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", d.where(), err))
			}
		}
		plan[i] = p
	}
	overlaps, err := checkPoolOverlaps(ctx, ds, plan)
	if err != nil {
		return nil, nil, err
	}
	return plan, append(problems, overlaps...), nil
}

// staleError says a document's resourceVersion is behind the stored one.
func staleError(key v3.Key, fileRV, current string) error {
	return fmt.Errorf("%w: %s is at resourceVersion %q but the document has %q; re-read it (calicoctl get -o yaml) and make the change again",
		datastore.ErrConflict, key, current, fileRV)
}

// checkImmutable refuses changes Calico refuses on update: an IP pool's CIDR
// and block size, which existing block allocations depend on.
func checkImmutable(cur, next v3.Resource) error {
	old, ok1 := cur.(*v3.IPPool)
	p, ok2 := next.(*v3.IPPool)
	if !ok1 || !ok2 {
		return nil
	}
	var fes []v3.FieldError
	if !sameCIDR(old.Spec.CIDR, p.Spec.CIDR) {
		fes = append(fes, v3.FieldError{Field: "spec.cidr", Reason: fmt.Sprintf("IPPool CIDR cannot be modified (stored %q, new %q): create a new pool instead", old.Spec.CIDR, p.Spec.CIDR)})
	}
	if old.Spec.BlockSize != p.Spec.BlockSize {
		fes = append(fes, v3.FieldError{Field: "spec.blockSize", Reason: fmt.Sprintf("IPPool blockSize cannot be modified (stored %d, new %d)", old.Spec.BlockSize, p.Spec.BlockSize)})
	}
	if len(fes) == 0 {
		return nil
	}
	return &v3.ValidationError{Kind: "IPPool", Name: p.Name, Errors: fes}
}

func sameCIDR(a, b string) bool {
	pa, err1 := netip.ParsePrefix(a)
	pb, err2 := netip.ParsePrefix(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return pa == pb
}

// checkPoolOverlaps checks each IP pool about to be written against the
// stored pools it does not replace and against the pools written before it
// in the same input (so an overlapping pair is reported once).
func checkPoolOverlaps(ctx context.Context, ds datastore.Interface, plan []planned) ([]string, error) {
	writing := map[string]bool{}
	for _, p := range plan {
		if _, ok := p.doc.Res.(*v3.IPPool); ok && p.op != opSkip {
			writing[p.doc.Res.GetName()] = true
		}
	}
	if len(writing) == 0 {
		return nil, nil
	}
	stored, err := ds.List(ctx, "IPPool", "")
	if err != nil {
		return nil, fmt.Errorf("list IP pools to check for overlaps: %w", err)
	}
	var others []*v3.IPPool
	for _, r := range stored.Items {
		if p, ok := r.(*v3.IPPool); ok && !writing[p.Name] {
			others = append(others, p)
		}
	}
	var problems []string
	for _, p := range plan {
		pool, ok := p.doc.Res.(*v3.IPPool)
		if !ok || p.op == opSkip {
			continue
		}
		if err := v3.ValidatePoolOverlap(pool, others); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p.doc.where(), err))
		}
		others = append(others, pool)
	}
	return problems, nil
}

// writeOne performs one planned write. Races with other writers since the
// preflight are handled: a create that finds the resource (apply) becomes an
// update, an update without a resourceVersion from the document re-reads and
// retries on conflict.
func writeOne(ctx context.Context, ds datastore.Interface, act action, p planned, skipExists bool) error {
	switch p.op {
	case opSkip:
		return nil
	case opCreate:
		_, err := ds.Create(ctx, p.doc.Res)
		if datastore.IsAlreadyExists(err) {
			switch {
			case act == actApply:
				return update(ctx, ds, act, p)
			case skipExists:
				return nil
			}
		}
		return err
	}
	return update(ctx, ds, act, p)
}

func update(ctx context.Context, ds datastore.Interface, act action, p planned) error {
	r := v3.Clone(p.doc.Res)
	key := v3.KeyOf(r)
	if p.fileRV != "" {
		r.SetResourceVersion(p.fileRV)
		_, err := ds.Update(ctx, r)
		if datastore.IsConflict(err) {
			cur := "unknown"
			if now, gerr := ds.Get(ctx, key); gerr == nil {
				cur = now.GetResourceVersion()
			}
			return staleError(key, p.fileRV, cur)
		}
		return err
	}
	var err error
	for range maxConflictRetries {
		var cur v3.Resource
		cur, err = ds.Get(ctx, key)
		if datastore.IsNotFound(err) && act == actApply {
			// Deleted since the preflight: apply means "make it so".
			r.SetResourceVersion("")
			_, err = ds.Create(ctx, r)
			if !datastore.IsAlreadyExists(err) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := checkImmutable(cur, r); err != nil {
			return err
		}
		r.SetResourceVersion(cur.GetResourceVersion())
		if _, err = ds.Update(ctx, r); !datastore.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts, other writers keep changing %s: %w", maxConflictRetries, key, err)
}

// kindOf is v3.KindOf; a short name for the many messages that use it.
func kindOf(r v3.Resource) string { return v3.KindOf(r) }
