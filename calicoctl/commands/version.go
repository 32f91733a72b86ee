package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

type versionFlags struct {
	clientOnly bool
}

func (c *CLI) newVersionCommand() *cobra.Command {
	var f versionFlags
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Display the version of calicoctl and of the cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runVersion(cmd, f)
		},
	}
	cmd.Flags().BoolVar(&f.clientOnly, "client", false, "Display the client version only.")
	return cmd
}

// clusterVersionTimeout bounds asking the cluster for its version when no
// other timeout is configured: version should answer promptly.
const clusterVersionTimeout = 5 * time.Second

func (c *CLI) runVersion(cmd *cobra.Command, f versionFlags) error {
	fmt.Fprintln(c.Stdout, "Client Version:   ", Version)
	fmt.Fprintln(c.Stdout, "Git commit:       ", GitCommit)
	if f.clientOnly {
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), clusterVersionTimeout)
	defer cancel()
	return c.withDatastore(ctx, func(ctx context.Context, ds datastore.Interface) error {
		version, clusterType, err := clusterInfo(ctx, ds)
		if err != nil {
			return fmt.Errorf("unable to retrieve Cluster Version or Type: %w", err)
		}
		fmt.Fprintln(c.Stdout, "Cluster Version:  ", version)
		fmt.Fprintln(c.Stdout, "Cluster Type:     ", clusterType)
		return nil
	})
}

// clusterInfo reads the "default" ClusterInformation's calicoVersion and
// clusterType. The resource model has no ClusterInformation kind yet, so
// until it does the datastore is only probed (a reachable one answers
// "unknown", an unreachable one is an error); the fields are read through
// JSON so that adding the kind needs no change here.
func clusterInfo(ctx context.Context, ds datastore.Interface) (version, clusterType string, err error) {
	version, clusterType = "unknown", "unknown"
	if _, ok := v3.KindByName("ClusterInformation"); !ok {
		// Any read proves the datastore answers; BGPConfiguration always exists as a kind.
		if _, err := ds.List(ctx, "BGPConfiguration", ""); err != nil {
			return "", "", err
		}
		return version, clusterType, nil
	}
	r, err := ds.Get(ctx, v3.Key{Kind: "ClusterInformation", Name: "default"})
	if datastore.IsNotFound(err) {
		return version, clusterType, nil
	}
	if err != nil {
		return "", "", err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return "", "", err
	}
	var ci struct {
		Spec struct {
			CalicoVersion string `json:"calicoVersion"`
			ClusterType   string `json:"clusterType"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &ci); err != nil {
		return "", "", errors.Join(errors.New("decode ClusterInformation"), err)
	}
	if ci.Spec.CalicoVersion != "" {
		version = ci.Spec.CalicoVersion
	}
	if ci.Spec.ClusterType != "" {
		clusterType = ci.Spec.ClusterType
	}
	return version, clusterType, nil
}
