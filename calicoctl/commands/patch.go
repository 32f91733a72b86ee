package commands

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/spf13/cobra"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/calicoctl/resourcemgr"
	"github.com/tabbynet/tabby/datastore"
)

type patchFlags struct {
	namespace string
	patch     string
	patchType string
}

func (c *CLI) newPatchCommand() *cobra.Command {
	var f patchFlags
	cmd := &cobra.Command{
		Use:   "patch KIND NAME -p PATCH",
		Short: "Change fields of an existing resource in place",
		Long: `Patch an existing resource. The patch is JSON or YAML. With --type merge
(or strategic, Calico's default name, which for these resources means the
same) it is a JSON merge patch (RFC 7386): objects merge, lists and values
replace, null deletes. With --type json it is a JSON patch (RFC 6902).
The result is defaulted and validated like a file, then written only if the
resource has not changed since it was read (retrying if it has).`,
		Example: "  calicoctl patch ippool default-ipv4-ippool -p '{\"spec\":{\"natOutgoing\":false}}'\n" +
			"  calicoctl patch node node-0 -p '{\"spec\":{\"bgp\":{\"routeReflectorClusterID\":\"224.0.0.1\"}}}'",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runPatch(cmd, args, f)
		},
	}
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of a namespaced resource (default \"default\").")
	cmd.Flags().StringVarP(&f.patch, "patch", "p", "", "The patch, JSON or YAML.")
	cmd.Flags().StringVarP(&f.patchType, "type", "t", resourcemgr.PatchStrategic, "Patch type: strategic or merge (JSON merge patch), json (JSON patch).")
	_ = cmd.MarkFlagRequired("patch")
	return cmd
}

func (c *CLI) runPatch(cmd *cobra.Command, args []string, f patchFlags) error {
	ki, err := lookupKind(args[0])
	if err != nil {
		return err
	}
	ns, err := argNamespace(ki, f.namespace, false)
	if err != nil {
		return err
	}
	key := v3.Key{Kind: ki.Kind, Namespace: ns, Name: args[1]}
	fail := func(err error) error { return fmt.Errorf("failed to patch '%s' resource: %w", ki.Kind, err) }
	return c.withDatastore(cmd.Context(), func(ctx context.Context, ds datastore.Interface) error {
		err := modify(ctx, ds, key, func(cur v3.Resource) (v3.Resource, error) {
			next, err := resourcemgr.ApplyPatch(cur, f.patch, f.patchType)
			if err != nil {
				return nil, err
			}
			if _, err := prepareForWrite(next); err != nil {
				return nil, err
			}
			if err := checkImmutable(cur, next); err != nil {
				return nil, err
			}
			if pool, ok := next.(*v3.IPPool); ok {
				if err := checkStoredOverlap(ctx, ds, pool); err != nil {
					return nil, err
				}
			}
			return next, nil
		})
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(c.Stdout, "Successfully patched 1 '%s' resource\n", ki.Kind)
		return nil
	})
}

// modify is read-modify-write with compare-and-swap: it reads key, lets
// change compute the new resource (change must not modify its argument),
// and writes it only if the stored resource is still the one read,
// starting over when another writer got in between.
func modify(ctx context.Context, ds datastore.Interface, key v3.Key, change func(cur v3.Resource) (v3.Resource, error)) error {
	var err error
	for range maxConflictRetries {
		var cur, next v3.Resource
		if cur, err = ds.Get(ctx, key); err != nil {
			return err
		}
		if next, err = change(cur); err != nil {
			return err
		}
		next.SetResourceVersion(cur.GetResourceVersion())
		if _, err = ds.Update(ctx, next); !datastore.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts, other writers keep changing %s: %w", maxConflictRetries, key, err)
}

// checkStoredOverlap checks one pool against every other stored pool.
func checkStoredOverlap(ctx context.Context, ds datastore.Interface, pool *v3.IPPool) error {
	stored, err := ds.List(ctx, "IPPool", "")
	if err != nil {
		return fmt.Errorf("list IP pools to check for overlaps: %w", err)
	}
	var others []*v3.IPPool
	for _, r := range stored.Items {
		if p, ok := r.(*v3.IPPool); ok && p.Name != pool.Name {
			others = append(others, p)
		}
	}
	return v3.ValidatePoolOverlap(pool, others)
}

type labelFlags struct {
	namespace string
	overwrite bool
	remove    bool
}

func (c *CLI) newLabelCommand() *cobra.Command {
	var f labelFlags
	cmd := &cobra.Command{
		Use:   "label KIND NAME (KEY=VALUE [--overwrite] | KEY --remove)",
		Short: "Add, change or remove a label of a resource",
		Long: `Set a label on a resource, or remove one. Changing the value of a label the
resource already has needs --overwrite; removing a label it does not have is
an error.`,
		Example: "  calicoctl label nodes node1 rack=r1\n  calicoctl label nodes node1 rack=r2 --overwrite\n  calicoctl label nodes node1 rack --remove\n  calicoctl label workloadendpoints -n prod node1-k8s-web-eth0 app=web",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runLabel(cmd, args, f)
		},
	}
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of a namespaced resource (default \"default\").")
	cmd.Flags().BoolVar(&f.overwrite, "overwrite", false, "Replace the value of a label the resource already has.")
	cmd.Flags().BoolVar(&f.remove, "remove", false, "Remove the label KEY.")
	return cmd
}

func (c *CLI) runLabel(cmd *cobra.Command, args []string, f labelFlags) error {
	kindArg, name, label := args[0], args[1], args[2]
	if f.remove && f.overwrite {
		return fmt.Errorf("--overwrite and --remove cannot be used together")
	}
	key, value, hasValue := strings.Cut(label, "=")
	switch {
	case f.remove && hasValue:
		return fmt.Errorf("invalid label %s: --remove takes a key, not key=value", label)
	case !f.remove && !hasValue:
		return fmt.Errorf("invalid label %s: give key=value, or key with --remove", label)
	case key == "":
		return fmt.Errorf("invalid label %s: the key is empty", label)
	}
	ki, err := lookupKind(kindArg)
	if err != nil {
		return err
	}
	ns, err := argNamespace(ki, f.namespace, false)
	if err != nil {
		return err
	}
	rkey := v3.Key{Kind: ki.Kind, Namespace: ns, Name: name}
	return c.withDatastore(cmd.Context(), func(ctx context.Context, ds datastore.Interface) error {
		existed := false
		err := modify(ctx, ds, rkey, func(cur v3.Resource) (v3.Resource, error) {
			next := v3.Clone(cur)
			labels := maps.Clone(next.GetLabels())
			if labels == nil {
				labels = map[string]string{}
			}
			old, ok := labels[key]
			existed = ok
			switch {
			case f.remove && !ok:
				return nil, fmt.Errorf("cannot remove label of %s %s, key %s does not exist", kindArg, name, key)
			case f.remove:
				delete(labels, key)
			case ok && old != value && !f.overwrite:
				return nil, fmt.Errorf("failed to update label of %s %s, key %s is already present. please use '--overwrite' to set a new value", kindArg, name, key)
			default:
				labels[key] = value
			}
			next.SetLabels(labels)
			if _, err := prepareForWrite(next); err != nil {
				return nil, err
			}
			return next, nil
		})
		if err != nil {
			if datastore.IsNotFound(err) {
				return fmt.Errorf("failed to get %s %s: %w", kindArg, name, err)
			}
			return err
		}
		switch {
		case f.remove:
			fmt.Fprintf(c.Stdout, "Successfully removed label %s from %s %s\n", key, kindArg, name)
		case existed:
			fmt.Fprintf(c.Stdout, "Successfully updated label %s on %s %s\n", key, kindArg, name)
		default:
			fmt.Fprintf(c.Stdout, "Successfully set label %s on %s %s\n", key, kindArg, name)
		}
		return nil
	})
}
