// Command calicoctl manages the projectcalico.org/v3 resources of a Tabby
// cluster; see calicoctl/README.md.
package main

import (
	"os"

	"github.com/tabbynet/tabby/calicoctl/commands"
)

func main() {
	cli := commands.New(os.Stdout, os.Stderr, os.Getenv)
	// Further command groups (ipam, node) are added here with cli.AddCommand.
	if err := cli.Execute(os.Args[1:]); err != nil {
		os.Exit(1)
	}
}
