package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

type deleteFlags struct {
	files         fileFlags
	namespace     string
	skipNotExists bool
}

func (c *CLI) newDeleteCommand() *cobra.Command {
	var f deleteFlags
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILENAME)",
		Short: "Delete resources by file, directory, stdin, or kind and name",
		Long: `Delete resources named in a file, directory or stdin, or by kind and names.
Every resource is checked first: if one does not exist nothing is deleted,
unless --skip-not-exists is given. A resourceVersion in a document makes its
deletion conditional on it. The kind is case-insensitive and may be plural.`,
		Example: "  calicoctl delete -f ./policy.yaml\n  calicoctl delete ippool pool-a pool-b\n  calicoctl delete workloadendpoint -n prod node1-k8s-web-eth0",
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runDelete(cmd, args, f)
		},
	}
	f.files.register(cmd, "delete")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of the resources (default \"default\" for namespaced kinds).")
	cmd.Flags().BoolVarP(&f.skipNotExists, "skip-not-exists", "s", false, "Skip over and treat as successful resources that don't exist.")
	return cmd
}

// target is one resource to delete.
type target struct {
	name  string // how messages name it: a document, or Kind "name"
	where string // the document it came from, "" for a command-line name
	key   v3.Key
	rv    string // delete only at this resourceVersion, when set
	skip  bool   // does not exist, and --skip-not-exists
}

func (c *CLI) runDelete(cmd *cobra.Command, args []string, f deleteFlags) error {
	targets, kind, err := c.deleteTargets(cmd, args, f)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		fmt.Fprintln(c.Stdout, "No resources specified")
		return nil
	}
	return c.withDatastore(cmd.Context(), func(ctx context.Context, ds datastore.Interface) error {
		// Check every target first, so a typo in the third name does not
		// leave the first two deleted.
		var problems []string
		for i := range targets {
			t := &targets[i]
			_, err := ds.Get(ctx, t.key)
			switch {
			case datastore.IsNotFound(err) && f.skipNotExists:
				t.skip = true
			case datastore.IsNotFound(err):
				problems = append(problems, strings.TrimPrefix(fmt.Sprintf("%s: %s: %v", t.where, t.key, datastore.ErrNotFound), ": "))
			case err != nil:
				return nothingWritten(actDelete, kind, len(targets), []string{fmt.Sprintf("check %s: %v", t.name, err)})
			}
		}
		if len(problems) > 0 {
			return nothingWritten(actDelete, kind, len(targets), problems)
		}
		for i, t := range targets {
			if t.skip {
				continue
			}
			_, err := ds.Delete(ctx, t.key, t.rv)
			if datastore.IsNotFound(err) && f.skipNotExists {
				continue
			}
			if datastore.IsConflict(err) {
				err = fmt.Errorf("%w: %s changed since resourceVersion %q; re-read it (calicoctl get -o yaml) before deleting it", datastore.ErrConflict, t.key, t.rv)
			}
			if err != nil {
				var done, notDone []string
				for _, d := range targets[:i] {
					done = append(done, d.name)
				}
				for _, d := range targets[i:] {
					notDone = append(notDone, d.name)
				}
				return stoppedHalfway(c.Stdout, actDelete, kind, done, notDone, fmt.Errorf("%s: %w", t.name, err))
			}
			c.Logger().Info("deleted resource", "resource", t.name)
		}
		succeeded(c.Stdout, actDelete, kind, len(targets))
		return nil
	})
}

// deleteTargets turns -f or KIND NAME... into keys.
func (c *CLI) deleteTargets(cmd *cobra.Command, args []string, f deleteFlags) ([]target, string, error) {
	if f.files.filename != "" {
		if len(args) > 0 {
			return nil, "", fmt.Errorf("give either -f or KIND NAME..., not both")
		}
		docs, err := c.loadDocuments(cmd, f.files)
		if err != nil {
			return nil, "", fmt.Errorf("failed to execute command: %w", err)
		}
		kind := singleKind(docs)
		var problems []string
		targets := make([]target, 0, len(docs))
		for _, d := range docs {
			if err := setNamespace(d.Res, f.namespace); err != nil {
				problems = append(problems, d.where()+": "+err.Error())
				continue
			}
			targets = append(targets, target{name: d.String(), where: d.where(), key: v3.KeyOf(d.Res), rv: d.Res.GetResourceVersion()})
		}
		if len(problems) > 0 {
			return nil, "", nothingWritten(actDelete, kind, len(docs), problems)
		}
		return targets, kind, nil
	}
	if len(args) < 2 {
		return nil, "", fmt.Errorf("give the resources to delete: KIND NAME... or -f FILENAME")
	}
	ki, err := lookupKind(args[0])
	if err != nil {
		return nil, "", err
	}
	ns, err := argNamespace(ki, f.namespace, false)
	if err != nil {
		return nil, "", err
	}
	var targets []target
	for _, name := range args[1:] {
		if name == "" {
			return nil, "", fmt.Errorf("resource name may not be empty")
		}
		key := v3.Key{Kind: ki.Kind, Namespace: ns, Name: name}
		targets = append(targets, target{name: describeKey(key), key: key})
	}
	return targets, ki.Kind, nil
}

// lookupKind resolves a KIND argument ("ippool", "IPPools", "pool"),
// refusing the internal IPAM records by name.
func lookupKind(name string) (v3.KindInfo, error) {
	ki, ok := v3.LookupKind(name)
	if !ok {
		return ki, fmt.Errorf("resource type '%s' is not supported", name)
	}
	if ki.Internal {
		return ki, fmt.Errorf("resource type '%s' is not supported: %s is an internal IPAM record that calicoctl does not manage directly; use 'calicoctl ipam'", name, ki.Kind)
	}
	return ki, nil
}

// argNamespace is the namespace KIND NAME arguments refer to.
func argNamespace(ki v3.KindInfo, cliNS string, allNS bool) (string, error) {
	if !ki.Namespaced {
		if cliNS != "" {
			return "", fmt.Errorf("%s is not namespaced: do not give --namespace", ki.Kind)
		}
		return "", nil
	}
	switch {
	case allNS && cliNS != "":
		return "", fmt.Errorf("cannot use both --namespace and --all-namespaces flags at the same time")
	case allNS:
		return "", nil
	case cliNS == "":
		return "default", nil
	}
	return cliNS, nil
}

// describeKey names a key as v3.Describe names a resource: IPPool "p1".
func describeKey(k v3.Key) string {
	if k.Namespace != "" {
		return fmt.Sprintf("%s %q", k.Kind, k.Namespace+"/"+k.Name)
	}
	return fmt.Sprintf("%s %q", k.Kind, k.Name)
}
