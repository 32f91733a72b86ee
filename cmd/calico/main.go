// Command calico is the "calico" CNI plugin (package cni-plugin/calico).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/tabbynet/tabby/cni-plugin/calico"
	tabbyversion "github.com/tabbynet/tabby/internal/version"
)

func main() {
	skel.PluginMainFuncs(calico.New(os.Stderr).Funcs(), version.All,
		"Tabby calico CNI plugin "+tabbyversion.Version+" ("+tabbyversion.Commit+")")
}
