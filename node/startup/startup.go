package startup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/node/autodetect"
	"github.com/tabbynet/tabby/node/config"
)

// nodeWriteRetries bounds re-reading the Node after a revision conflict
// (someone else, e.g. calicoctl, wrote it between our read and write).
const nodeWriteRetries = 5

// Result is what the rest of the daemon needs from startup.
type Result struct {
	Node *v3.Node
	// IPv4 and IPv6 are the node's addresses and the interfaces that hold
	// them (Interface empty when the address is on no local interface);
	// nil when the node has none of that family.
	IPv4, IPv6   *autodetect.Result
	CreatedPools []string
	// MTU is the MTU for pods (see podMTU).
	MTU int
}

// Run performs startup. Every error says what to change.
//
// Differences from Calico: an autodetection that finds nothing always
// fails, even when the Node still holds an address from an earlier start
// (Calico keeps the old one, which may belong to an interface that is gone);
// with IP unset, a set IP_AUTODETECTION_METHOD is used even when the Node
// already has an address (Calico then ignores the method);
// when CALICO_IPV4POOL_CIDR is unset the default pool is 192.168.0.0/16
// without Calico's search for a range that avoids host addresses; an IPv6
// pool is only created when CALICO_IPV6POOL_CIDR is set.
func Run(ctx context.Context, ds datastore.Interface, cfg config.Config, sys autodetect.System, log *slog.Logger) (Result, error) {
	if err := refuseCalicoIPAM(ctx, ds); err != nil {
		return Result{}, err
	}
	var res Result
	var err error
	for attempt := 0; ; attempt++ {
		res, err = registerNode(ctx, ds, cfg, sys, log)
		if err == nil || !datastore.IsConflict(err) || attempt == nodeWriteRetries {
			break
		}
		log.Info("node resource changed while it was being updated, re-reading", "node", cfg.NodeName)
	}
	if err != nil {
		return Result{}, err
	}
	pools, created, err := ensurePools(ctx, ds, cfg.Pools, sys, log)
	if err != nil {
		return Result{}, err
	}
	res.CreatedPools = created
	nodeIface := res.IPv4
	if nodeIface == nil {
		nodeIface = res.IPv6
	}
	res.MTU = podMTU(nodeIface, pools)
	if cfg.NodenameFile != "" {
		if err := writeNodename(cfg.NodenameFile, cfg.NodeName); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func registerNode(ctx context.Context, ds datastore.Interface, cfg config.Config, sys autodetect.System, log *slog.Logger) (Result, error) {
	key := v3.Key{Kind: "Node", Name: cfg.NodeName}
	var node *v3.Node
	switch r, err := ds.Get(ctx, key); {
	case err == nil:
		node = r.(*v3.Node)
	case datastore.IsNotFound(err):
		log.Info("building a new node resource", "node", cfg.NodeName)
		r, _ := v3.NewResource("Node")
		node = r.(*v3.Node)
		node.Name = cfg.NodeName
	default:
		return Result{}, fmt.Errorf("read node %q from the datastore: %w", cfg.NodeName, err)
	}
	before := v3.Clone(node)

	var res Result
	if cfg.NetworkingBackend != "none" {
		if node.Spec.BGP == nil {
			node.Spec.BGP = &v3.NodeBGPSpec{}
		}
		var err error
		if res.IPv4, err = configureAddress(cfg.IPv4, &node.Spec.BGP.IPv4Address, sys, log); err != nil {
			return Result{}, err
		}
		if res.IPv6, err = configureAddress(cfg.IPv6, &node.Spec.BGP.IPv6Address, sys, log); err != nil {
			return Result{}, err
		}
		if node.Spec.BGP.IPv4Address == "" && node.Spec.BGP.IPv6Address == "" {
			return Result{}, errors.New("no IPv4 or IPv6 address configured or detected for this node, and BGP needs one: " +
				"set IP=autodetect (with IP_AUTODETECTION_METHOD) or IP=<address>/<prefix length>, or IP6 for IPv6 " +
				"(CALICO_NETWORKING_BACKEND=none runs without)")
		}
		if cfg.AS != nil {
			as := *cfg.AS
			node.Spec.BGP.ASNumber = &as
		}
	}
	if cfg.K8sNodeRef != "" {
		node.Spec.OrchRefs = []v3.OrchRef{{NodeName: cfg.K8sNodeRef, Orchestrator: "k8s"}}
	}

	if !cfg.DisableNodeIPCheck && addressesChanged(before, node) {
		if err := checkConflicts(ctx, ds, node, cfg, log); err != nil {
			return Result{}, err
		}
	}

	if node.ResourceVersion == "" {
		created, err := ds.Create(ctx, node)
		if err != nil {
			if datastore.IsAlreadyExists(err) {
				// Created concurrently: re-read and apply on top.
				return Result{}, fmt.Errorf("create node %q: %w", node.Name, datastore.ErrConflict)
			}
			return Result{}, fmt.Errorf("create node %q: %w", node.Name, err)
		}
		log.Info("registered node", "node", node.Name, "ipv4", bgpField(created, false), "ipv6", bgpField(created, true))
		res.Node = created.(*v3.Node)
		return res, nil
	}
	if reflect.DeepEqual(before, node) {
		res.Node = node
		return res, nil
	}
	updated, err := ds.Update(ctx, node)
	if err != nil {
		return Result{}, fmt.Errorf("update node %q: %w", node.Name, err)
	}
	log.Info("updated node", "node", node.Name, "ipv4", bgpField(updated, false), "ipv6", bgpField(updated, true))
	res.Node = updated.(*v3.Node)
	return res, nil
}

// configureAddress applies IP (or IP6) to the Node's address field, as
// Calico's configureIPsAndSubnets does. It returns the address in use and
// its interface, or nil when the field ends up empty.
func configureAddress(a config.Address, field *string, sys autodetect.System, log *slog.Logger) (*autodetect.Result, error) {
	// With IP unset, Calico detects only for a new node and otherwise keeps
	// the stored address, even when IP_AUTODETECTION_METHOD names another
	// interface; Tabby honours an explicitly set method.
	detect := a.Mode == config.AddressAutodetect ||
		(a.Mode == config.AddressUnset && a.Family == 4 && (*field == "" || a.MethodSet))
	switch {
	case detect:
		r, err := autodetect.Detect(a.Method, a.Family, sys)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", a.MethodEnv, a.Method, err)
		}
		log.Info("autodetected node address", "family", a.Family, "method", a.Method.String(), "interface", r.Interface, "address", r.Prefix.String())
		*field = r.Prefix.String()
		return &r, nil
	case a.Mode == config.AddressStatic:
		r, found, err := autodetect.LocalPrefix(a.Static.Addr(), sys)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: look for the address on this host: %w", a.Env, a.Raw, err)
		}
		if !found {
			log.Warn("cannot confirm that the configured node address is on this host", "env", a.Env, "address", a.Raw)
			r = autodetect.Result{Prefix: a.Static}
		} else if a.StaticHasPrefix {
			r.Prefix = a.Static
		}
		*field = r.Prefix.String()
		return &r, nil
	}
	// Keep what the Node has (IP unset with an address, IP=none, IP6 unset).
	if *field == "" {
		return nil, nil
	}
	p, err := netip.ParsePrefix(*field)
	if err != nil {
		addr, aerr := netip.ParseAddr(*field)
		if aerr != nil {
			return nil, fmt.Errorf("the node's stored address %q is not an address: set %s to replace it", *field, a.Env)
		}
		p = netip.PrefixFrom(addr, addr.BitLen())
	}
	r, found, err := autodetect.LocalPrefix(p.Addr(), sys)
	if err != nil {
		return nil, fmt.Errorf("look for the node's address %s on this host: %w", p, err)
	}
	if !found {
		log.Warn("cannot confirm that the node's stored address is on this host", "address", p.String())
	}
	r.Prefix = p
	log.Info("keeping the node's stored address", "family", a.Family, "address", p.String(), "env", a.Env, "value", a.Raw)
	return &r, nil
}

func bgpField(r v3.Resource, v6 bool) string {
	n := r.(*v3.Node)
	if n.Spec.BGP == nil {
		return ""
	}
	if v6 {
		return n.Spec.BGP.IPv6Address
	}
	return n.Spec.BGP.IPv4Address
}

func nodeAddrs(n *v3.Node) (v4, v6 netip.Addr) {
	if n.Spec.BGP == nil {
		return
	}
	return addrOf(n.Spec.BGP.IPv4Address), addrOf(n.Spec.BGP.IPv6Address)
}

// addrOf reads "10.0.0.5/24" or "10.0.0.5"; invalid or empty gives the zero Addr.
func addrOf(s string) netip.Addr {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

// addressesChanged: Calico checks for conflicts only when this start
// changes the node's addresses (or registers it), so that restarting many
// nodes does not list every Node each time.
func addressesChanged(before, after *v3.Node) bool {
	if before.ResourceVersion == "" {
		return true
	}
	b4, b6 := nodeAddrs(before)
	a4, a6 := nodeAddrs(after)
	return b4 != a4 || b6 != a6
}

// checkConflicts refuses an address that another Node already uses: two
// nodes with one address would black-hole each other's BGP routes.
func checkConflicts(ctx context.Context, ds datastore.Interface, node *v3.Node, cfg config.Config, log *slog.Logger) error {
	list, err := ds.List(ctx, "Node", "")
	if err != nil {
		return fmt.Errorf("list nodes to check that no other node uses this node's address: %w", err)
	}
	our4, our6 := nodeAddrs(node)
	var errs []error
	for _, item := range list.Items {
		other := item.(*v3.Node)
		their4, their6 := nodeAddrs(other)
		if other.Name == node.Name {
			if their4.IsValid() && our4.IsValid() && their4 != our4 {
				log.Warn("node IPv4 address changed (two hosts with the same node name would do this)", "node", node.Name, "from", their4.String(), "to", our4.String())
			}
			continue
		}
		if our4.IsValid() && their4 == our4 {
			errs = append(errs, conflictError(other.Name, our4, cfg.IPv4))
		}
		if our6.IsValid() && their6 == our6 {
			errs = append(errs, conflictError(other.Name, our6, cfg.IPv6))
		}
	}
	return errors.Join(errs...)
}

func conflictError(other string, addr netip.Addr, a config.Address) error {
	how := fmt.Sprintf("%s=%s", a.Env, a.Raw)
	if a.Mode != config.AddressStatic {
		how = fmt.Sprintf("autodetected with %s=%s", a.MethodEnv, a.Method)
	}
	fam := "IPv4"
	if addr.Is6() {
		fam = "IPv6"
	}
	return fmt.Errorf("node %q already uses the %s address %s (%s): give this node another address with %s or %s, "+
		"or delete node %q if that host is gone (DISABLE_NODE_IP_CHECK=true skips this check)",
		other, fam, addr, how, a.Env, a.MethodEnv, other)
}

// writeNodename records the node name where Calico's CNI plugin looks for it.
func writeNodename(path, name string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write node name file %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(name), 0o644); err != nil {
		return fmt.Errorf("write node name file %s: %w", path, err)
	}
	return nil
}

// calicoIPAMChecker is implemented by datastores that can tell whether Calico
// itself keeps IPAM records there (the etcd backend).
type calicoIPAMChecker interface {
	HasCalicoIPAMData(ctx context.Context) (bool, error)
}

// refuseCalicoIPAM stops startup on a datastore that still holds Calico's own
// IPAM records: Tabby keeps its records under another key prefix, so it would
// not see the blocks Calico's running pods use and could hand their
// addresses out again.
func refuseCalicoIPAM(ctx context.Context, ds datastore.Interface) error {
	c, ok := ds.(calicoIPAMChecker)
	if !ok {
		return nil
	}
	found, err := c.HasCalicoIPAMData(ctx)
	if err != nil {
		return err
	}
	if found {
		return errors.New("this etcd holds Calico's own IPAM records (/calico/ipam/v2/); Tabby would not see the addresses they hold " +
			"and could hand them out twice: migrate or remove Calico's IPAM data first (Tabby reads IPAM from /calico/resources/v3/)")
	}
	return nil
}
