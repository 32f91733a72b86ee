// Package tcpfwd pipes TCP connections from a listener to a fixed target.
// The test harnesses and the lab use it to make an etcd on the test's
// loopback reachable from inside network namespaces: the caller creates the
// listener inside the namespace (a socket belongs to the namespace it was
// made in, whatever thread later serves it) and the forwarder dials the
// target from the caller's own namespace.
package tcpfwd

import (
	"io"
	"net"
	"sync"
)

// Forwarder serves one listener until Close.
type Forwarder struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Serve starts piping every connection accepted on ln to target. A
// connection whose target cannot be dialled is closed.
func Serve(ln net.Listener, target string) *Forwarder {
	f := &Forwarder{ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.track(c, true)
			f.track(up, true)
			f.wg.Add(2)
			go f.pipe(up, c)
			go f.pipe(c, up)
		}
	}()
	return f
}

func (f *Forwarder) track(c net.Conn, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *Forwarder) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	f.track(dst, false)
	f.track(src, false)
}

// Close stops accepting, closes every open connection and waits for the
// goroutines serving them.
func (f *Forwarder) Close() error {
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}
