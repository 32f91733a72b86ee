package commands

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	v3 "github.com/tabbynet/tabby/api/v3"
)

type validateFlags struct {
	files     fileFlags
	namespace string
}

func (c *CLI) newValidateCommand() *cobra.Command {
	var f validateFlags
	cmd := &cobra.Command{
		Use:   "validate -f FILENAME",
		Short: "Check resources offline, without a datastore",
		Long: `Decode, default and validate the resources in a file, directory or stdin,
exactly as create and apply would, without connecting to any datastore. IP
pools are also checked against each other (but not against stored pools).`,
		Example: "  calicoctl validate -f ./pools.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runValidate(cmd, f)
		},
	}
	f.files.register(cmd, "validate")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "Namespace of namespaced resources that name none (default \"default\").")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

var actValidate = action{"validate", "validated"}

func (c *CLI) runValidate(cmd *cobra.Command, f validateFlags) error {
	docs, err := c.loadDocuments(cmd, f.files)
	if err != nil {
		return fmt.Errorf("failed to execute command: %w", err)
	}
	if len(docs) == 0 {
		fmt.Fprintln(c.Stdout, "No resources specified")
		return nil
	}
	kind := singleKind(docs)
	var problems []string
	var pools []*v3.IPPool
	for _, d := range docs {
		if err := setNamespace(d.Res, f.namespace); err != nil {
			problems = append(problems, d.where()+": "+err.Error())
			continue
		}
		if _, err := prepareForWrite(d.Res); err != nil {
			problems = append(problems, d.where()+": "+err.Error())
			continue
		}
		if p, ok := d.Res.(*v3.IPPool); ok {
			if err := v3.ValidatePoolOverlap(p, pools); err != nil {
				problems = append(problems, d.where()+": "+err.Error())
			}
			pools = append(pools, p)
		}
	}
	problems = append(problems, duplicates(docs)...)
	if len(problems) > 0 {
		if len(docs) == 1 {
			return fmt.Errorf("failed to validate '%s' resource: %s", kind, problems[0])
		}
		return fmt.Errorf("%d of %d resources are invalid:\n  %s", len(problems), len(docs), strings.Join(problems, "\n  "))
	}
	succeeded(c.Stdout, actValidate, kind, len(docs))
	return nil
}
