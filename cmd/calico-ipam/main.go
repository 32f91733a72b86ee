// Command calico-ipam is the "calico-ipam" CNI IPAM plugin (package
// cni-plugin/calicoipam).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/tabbynet/tabby/cni-plugin/calicoipam"
	tabbyversion "github.com/tabbynet/tabby/internal/version"
)

func main() {
	// calico.yaml's upgrade-ipam init container runs "calico-ipam -upgrade"
	// (host-local to calico-ipam migration). Without CNI_COMMAND skel only
	// prints the about line and exits 0, so that step is a no-op here.
	skel.PluginMainFuncs(calicoipam.New(os.Stderr).Funcs(), version.All,
		"Tabby calico-ipam CNI plugin "+tabbyversion.Version+" ("+tabbyversion.Commit+")")
}
