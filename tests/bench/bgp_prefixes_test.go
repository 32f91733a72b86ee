package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/tests/lab"
)

const (
	// prefixCount is how many routes the injector announces.
	prefixCount = 100_000
	// injectorAS is the announcing BIRD's AS: an external peer (as a ToR
	// would be), so prefixes outside the pools are accepted.
	injectorAS = 65100
)

// firstPrefix starts the announced /32s: 10.200.0.0 to 10.201.134.159,
// outside the pool (10.244.0.0/16) and every lab address.
var firstPrefix = netip.MustParseAddr("10.200.0.0")

// receiver is one system under test: a namespace whose kernel gets the
// routes, the protocol its routes carry, the process doing it, and the
// injector's static protocol that announces only to it.
type receiver struct {
	name   string
	ns     *lab.NetNS
	proto  int
	proc   *lab.Proc
	static string
}

type prefixResult struct {
	add, del []time.Duration
	cpu      []time.Duration
	peakRSS  int64
}

// BenchmarkBGP100kPrefixes: a BIRD peer announces 100,000 /32s; how long
// until all are in the receiving node's kernel, and until all are gone
// after the withdrawal, with Tabby's calico-node as the receiver and with
// BIRD as the receiver, in the same run, plus raw netlink insertion of the
// same routes (Go netlink RouteAdd one by one: the floor). Peak RSS of
// each receiver holding the routes. Each receiver has the CPU to itself:
// the injector announces to one at a time (one static protocol per
// receiver, every session up throughout).
//
//	go test -run '^$' -bench BGP100k -benchtime 1x ./tests/bench/
func BenchmarkBGP100kPrefixes(b *testing.B) {
	requireBGPTools(b, "bird", "birdc")
	bin := benchBinaries(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := newBenchLab(ctx, b, lab.Options{NoToR: true, BinDir: bin, AgentLogLevel: "warning"})
	prefixes := hostPrefixes(firstPrefix, prefixCount)

	birdRx, err := l.AddPeer(ctx, "birdrx", 0)
	if err != nil {
		b.Fatal(err)
	}
	node, err := l.AddNode(ctx, lab.NodeSpec{})
	if err != nil {
		b.Fatal(err)
	}
	inj, err := l.AddPeer(ctx, "inj", 0)
	if err != nil {
		b.Fatal(err)
	}
	// Receivers first, so the injector's sessions come up at once.
	err = birdRx.StartBIRD(ctx, lab.BIRDConfig{Kernel: true, Peers: []lab.BIRDPeer{{
		Name: "inj", Local: birdRx.IP, LocalAS: lab.DefaultASNumber, Addr: inj.IP, AS: injectorAS, Export: "none",
	}}})
	if err != nil {
		b.Fatal(err)
	}
	peerYAML := fmt.Sprintf("---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: injector\nspec:\n  peerIP: %s\n  asNumber: %d\n", inj.IP, injectorAS)
	if err := l.Apply(ctx, l.TopologyYAML()+peerYAML); err != nil {
		b.Fatal(err)
	}
	if err := node.Start(ctx); err != nil {
		b.Fatal(err)
	}
	err = inj.StartBIRD(ctx, lab.BIRDConfig{
		MoreStatics: []lab.BIRDStatic{
			{Name: "to_bird", Prefixes: prefixes, Disabled: true},
			{Name: "to_tabby", Prefixes: prefixes, Disabled: true},
		},
		Peers: []lab.BIRDPeer{
			{Name: "birdrx", Local: inj.IP, LocalAS: injectorAS, Addr: birdRx.IP, AS: lab.DefaultASNumber, ExportProtocol: "to_bird"},
			{Name: "tabby", Local: inj.IP, LocalAS: injectorAS, Addr: node.IP, AS: lab.DefaultASNumber, ExportProtocol: "to_tabby"},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := waitBIRDEstablished(ctx, inj.BIRD, "birdrx", "tabby"); err != nil {
		b.Fatal(err)
	}
	if err := node.WaitEstablished(ctx, time.Minute, inj.IP); err != nil {
		b.Fatal(err)
	}

	rxs := []receiver{
		{name: birdVersion() + " (kernel protocol)", ns: birdRx.NS, proto: unix.RTPROT_BIRD, proc: birdRx.BIRD.Proc, static: "to_bird"},
		{name: "Tabby calico-node", ns: node.NS, proto: lab.RouteProtocol, proc: node.Proc(), static: "to_tabby"},
	}
	results := make([]prefixResult, len(rxs))
	raw := prefixResult{}
	rawNS, err := l.NewNetNS("rawnetlink")
	if err != nil {
		b.Fatal(err)
	}
	n := rounds()
	b.ResetTimer()
	for round := range n {
		for i, rx := range rxs {
			add, del, cpu, err := measureReceiver(ctx, inj.BIRD, rx, prefixCount)
			if err != nil {
				b.Fatalf("round %d, %s: %v\n%s", round+1, rx.name, err, rx.proc.LogTail(20))
			}
			results[i].add = append(results[i].add, add)
			results[i].del = append(results[i].del, del)
			results[i].cpu = append(results[i].cpu, cpu)
		}
		add, del, err := rawNetlink(rawNS, prefixes)
		if err != nil {
			b.Fatalf("raw netlink: %v", err)
		}
		raw.add = append(raw.add, add)
		raw.del = append(raw.del, del)
	}
	b.StopTimer()
	for i, rx := range rxs {
		if u, err := rx.proc.Usage(); err == nil {
			results[i].peakRSS = u.PeakRSS
		}
	}

	var t strings.Builder
	fmt.Fprintf(&t, "%d prefixes announced by a BIRD peer (eBGP), into the receiver's kernel; median of %d rounds (each round's figures in brackets)\n", prefixCount, n)
	tw := tabwriter.NewWriter(&t, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "receiver\tall in kernel (s)\tall gone after withdraw (s)\tCPU per round (s)\tpeak RSS (MiB)")
	for i, rx := range rxs {
		r := results[i]
		fmt.Fprintf(tw, "%s\t%s [%s]\t%s [%s]\t%s\t%s\n", rx.name, secs(median(r.add)), allSecs(r.add), secs(median(r.del)), allSecs(r.del), secs(median(r.cpu)), mib(r.peakRSS))
	}
	fmt.Fprintf(tw, "raw netlink RouteAdd/RouteDel, one by one\t%s [%s]\t%s [%s]\t-\t-\n", secs(median(raw.add)), allSecs(raw.add), secs(median(raw.del)), allSecs(raw.del))
	tw.Flush()
	tabbyAdd, birdAdd, rawAdd := median(results[1].add), median(results[0].add), median(raw.add)
	fmt.Fprintf(&t, "Tabby/BIRD: add %.2fx, withdraw %.2fx (target <= 1.0x); Tabby/raw netlink: add %.2fx (target <= 1.3x)\n",
		tabbyAdd.Seconds()/birdAdd.Seconds(), median(results[1].del).Seconds()/median(results[0].del).Seconds(), tabbyAdd.Seconds()/rawAdd.Seconds())
	b.Log("\n" + t.String())

	b.ReportMetric(tabbyAdd.Seconds(), "tabby-add-s")
	b.ReportMetric(median(results[1].del).Seconds(), "tabby-withdraw-s")
	b.ReportMetric(birdAdd.Seconds(), "bird-add-s")
	b.ReportMetric(median(results[0].del).Seconds(), "bird-withdraw-s")
	b.ReportMetric(rawAdd.Seconds(), "netlink-add-s")
	b.ReportMetric(float64(results[1].peakRSS)/(1<<20), "tabby-peakRSS-MiB")
	b.ReportMetric(float64(results[0].peakRSS)/(1<<20), "bird-peakRSS-MiB")
}

// measureReceiver announces the prefixes to one receiver (enabling its
// static protocol on the injector) and times until its kernel holds them
// all, then withdraws them and times until they are all gone. cpu is what
// the receiving process used meanwhile.
func measureReceiver(ctx context.Context, inj *lab.BIRD, rx receiver, n int) (add, del, cpu time.Duration, err error) {
	w, err := rx.ns.WatchRoutes(rx.proto, false)
	if err != nil {
		return 0, 0, 0, err
	}
	defer w.Close()
	base, err := w.Count()
	if err != nil {
		return 0, 0, 0, err
	}
	before, err := rx.proc.Usage()
	if err != nil {
		return 0, 0, 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	if _, err := inj.Birdc(ctx, "enable", rx.static); err != nil {
		return 0, 0, 0, err
	}
	at, _, err := w.WaitCount(wctx, func(c int) bool { return c >= base+n })
	if err != nil {
		return 0, 0, 0, fmt.Errorf("announce: %w", err)
	}
	add = at.Sub(t0)
	t1 := time.Now()
	if _, err := inj.Birdc(ctx, "disable", rx.static); err != nil {
		return 0, 0, 0, err
	}
	at, _, err = w.WaitCount(wctx, func(c int) bool { return c <= base })
	if err != nil {
		return 0, 0, 0, fmt.Errorf("withdraw: %w", err)
	}
	del = at.Sub(t1)
	after, err := rx.proc.Usage()
	if err != nil {
		return 0, 0, 0, err
	}
	// A lost notification stream (w.Lost) is not an error: WaitCount then
	// read the counts from table dumps, a little later than the fact.
	return add, del, after.CPU - before.CPU, nil
}

// rawNetlink inserts the prefixes into an empty namespace with Go netlink
// RouteAdd, one by one (`<prefix> via 10.98.0.2 dev veth0 proto 98`), then
// deletes them the same way: the kernel's own cost, with no BGP at all.
func rawNetlink(n *lab.NetNS, prefixes []netip.Prefix) (add, del time.Duration, err error) {
	err = n.Netlink(func(h *netlink.Handle) error {
		if _, err := h.LinkByName("veth0"); err != nil {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}, PeerName: "veth1"}
			if err := h.LinkAdd(v); err != nil {
				return err
			}
			l, err := h.LinkByName("veth0")
			if err != nil {
				return err
			}
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 98, 0, 1), Mask: net.CIDRMask(24, 32)}}); err != nil {
				return err
			}
			for _, name := range []string{"veth0", "veth1"} {
				l, err := h.LinkByName(name)
				if err != nil {
					return err
				}
				if err := h.LinkSetUp(l); err != nil {
					return err
				}
			}
		}
		l, err := h.LinkByName("veth0")
		if err != nil {
			return err
		}
		routes := make([]*netlink.Route, len(prefixes))
		gw := net.IPv4(10, 98, 0, 2)
		for i, p := range prefixes {
			routes[i] = &netlink.Route{
				Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)},
				Gw:        gw,
				LinkIndex: l.Attrs().Index,
				Protocol:  lab.RouteProtocol,
			}
		}
		t0 := time.Now()
		for _, r := range routes {
			if err := h.RouteAdd(r); err != nil {
				return fmt.Errorf("add %s: %w", r.Dst, err)
			}
		}
		add = time.Since(t0)
		t1 := time.Now()
		for _, r := range routes {
			if err := h.RouteDel(r); err != nil {
				return fmt.Errorf("delete %s: %w", r.Dst, err)
			}
		}
		del = time.Since(t1)
		return nil
	})
	return add, del, err
}

// waitBIRDEstablished waits until the named BGP protocols are Established.
func waitBIRDEstablished(ctx context.Context, b *lab.BIRD, names ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		ps, err := b.Protocols(ctx)
		if err == nil {
			down := []string{}
			for _, n := range names {
				if !ps[n].Established() {
					down = append(down, n+" "+ps[n].State+" "+ps[n].Info)
				}
			}
			if len(down) == 0 {
				return nil
			}
			err = fmt.Errorf("BIRD %s: not established: %s", b.Name, strings.Join(down, ", "))
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
