// Command calicoctl manages the projectcalico.org/v3 resources of a Tabby
// cluster; see calicoctl/README.md.
package main

import (
	"os"

	"github.com/tabbynet/tabby/calicoctl/commands"
	"github.com/tabbynet/tabby/calicoctl/ipamcmd"
	"github.com/tabbynet/tabby/calicoctl/nodecmd"
)

func main() {
	cli := commands.New(os.Stdout, os.Stderr, os.Getenv)
	cli.AddCommand(ipamcmd.NewCommand(cli.Datastore, os.Stdout, os.Stderr))
	cli.AddCommand(nodecmd.NewCommand(os.Getenv, os.Stdout, os.Stderr))
	if err := cli.Execute(os.Args[1:]); err != nil {
		os.Exit(1)
	}
}
