package etcdtest

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a loopback TCP proxy in front of an etcd endpoint. Disconnect
// simulates a datastore outage for the clients behind it (their connections
// drop and new ones are refused) while clients connected directly keep
// working; Reconnect ends the outage on the same address.
type Proxy struct {
	t      testing.TB
	target string // host:port
	addr   string // host:port we listen on

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to endpoint
// ("http://127.0.0.1:port"). It is closed when the test ends.
func NewProxy(t testing.TB, endpoint string) *Proxy {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		t.Fatalf("proxy target %q is not a host URL", endpoint)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{t: t, target: u.Host, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Endpoint is the URL clients use to go through the proxy.
func (p *Proxy) Endpoint() string { return "http://" + p.addr }

// Disconnect closes the listener and every proxied connection.
func (p *Proxy) Disconnect() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Reconnect listens again on the same address.
func (p *Proxy) Reconnect() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy re-listen on %s: %v", p.addr, err)
	}
	p.serveLocked(ln)
}

func (p *Proxy) close() {
	p.Disconnect()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(ln)
}

func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					p.t.Logf("proxy accept: %v", err)
				}
				return
			}
			p.forward(ln, c)
		}
	}()
}

// forward pipes one client connection to the target until either side ends.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln { // disconnected meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()

	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			c.Close()
			up.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, up)
			p.mu.Unlock()
		})
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); io.Copy(up, c); closeBoth() }()
	go func() { defer p.wg.Done(); io.Copy(c, up); closeBoth() }()
}
