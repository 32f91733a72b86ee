package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// Matrix is a pod-to-pod connectivity result: OK[i][j] says whether
// Pods[i] got an answer from Pods[j].
type Matrix struct {
	Pods []*Pod
	OK   [][]bool
}

// pingTries is how many single pings a pair gets before it counts as
// unreachable: the first may wait on ARP (and proxy ARP) resolution.
const pingTries = 3

// Connectivity pings every pod from every other pod (one ping with a 1 s
// timeout, up to pingTries times). Sources run in parallel; one shell per
// source keeps `ip netns exec` out of the loop.
func (l *Lab) Connectivity(ctx context.Context) (Matrix, error) {
	l.mu.Lock()
	pods := append([]*Pod(nil), l.Pods...)
	l.mu.Unlock()
	m := Matrix{Pods: pods, OK: make([][]bool, len(pods))}
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, src := range pods {
		m.OK[i] = make([]bool, len(pods))
		var dsts []netip.Addr
		for j, dst := range pods {
			if j != i {
				dsts = append(dsts, dst.IP)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := PingAll(ctx, src.NS, dsts)
			if err != nil {
				errs[i] = err
				return
			}
			for j, dst := range pods {
				m.OK[i][j] = j == i || ok[dst.IP]
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return m, err
		}
	}
	return m, nil
}

// PingAll pings each destination from namespace n and reports which
// answered.
func PingAll(ctx context.Context, n *NetNS, dsts []netip.Addr) (map[netip.Addr]bool, error) {
	var script strings.Builder
	script.WriteString("for ip in")
	for _, d := range dsts {
		script.WriteString(" " + d.String())
	}
	fmt.Fprintf(&script, "; do r=fail; for t in $(seq %d); do if ping -c 1 -W 1 -q $ip >/dev/null 2>&1; then r=ok; break; fi; done; echo $ip $r; done", pingTries)
	out, err := n.Exec(ctx, "sh", "-c", script.String())
	if err != nil {
		return nil, err
	}
	res := map[netip.Addr]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if a, err := netip.ParseAddr(f[0]); err == nil {
			res[a] = f[1] == "ok"
		}
	}
	return res, nil
}

// Ping pings dst from namespace n (up to pingTries single pings).
func Ping(ctx context.Context, n *NetNS, dst netip.Addr) error {
	ok, err := PingAll(ctx, n, []netip.Addr{dst})
	if err != nil {
		return err
	}
	if !ok[dst] {
		return fmt.Errorf("%s cannot reach %s", n.Name, dst)
	}
	return nil
}

// AllOK reports whether every pair answered.
func (m Matrix) AllOK() bool {
	for _, row := range m.OK {
		for _, ok := range row {
			if !ok {
				return false
			}
		}
	}
	return true
}

// Failures lists the pairs that did not answer, "a -> b".
func (m Matrix) Failures() []string {
	var out []string
	for i, row := range m.OK {
		for j, ok := range row {
			if !ok {
				out = append(out, fmt.Sprintf("%s (%s) -> %s (%s)", m.Pods[i], m.Pods[i].IP, m.Pods[j], m.Pods[j].IP))
			}
		}
	}
	return out
}

// String renders the matrix: one row per source pod, one column per
// destination, "ok" or "--" (and "." on the diagonal).
func (m Matrix) String() string {
	var b strings.Builder
	labels := make([]string, len(m.Pods))
	w := len("from \\ to")
	for i, p := range m.Pods {
		labels[i] = fmt.Sprintf("#%d %s %s", i+1, p, p.IP)
		w = max(w, len(labels[i]))
	}
	colw := 0
	for i := range m.Pods {
		colw = max(colw, len(fmt.Sprint(i+1))+1)
	}
	colw = max(colw, 3)
	fmt.Fprintf(&b, "%-*s", w, "from \\ to")
	for i := range m.Pods {
		fmt.Fprintf(&b, " %*s", colw, fmt.Sprintf("#%d", i+1))
	}
	b.WriteString("\n")
	for i := range m.Pods {
		fmt.Fprintf(&b, "%-*s", w, labels[i])
		for j := range m.Pods {
			cell := "ok"
			switch {
			case i == j:
				cell = "."
			case !m.OK[i][j]:
				cell = "--"
			}
			fmt.Fprintf(&b, " %*s", colw, cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}
