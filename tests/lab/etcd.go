package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/backend"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/internal/tcpfwd"
)

// EtcdPort is where the fabric forwards etcd for the nodes.
const EtcdPort = 2379

// Datastore is the lab's etcd: an embedded single-member server in the lab
// process on loopback, reachable from the nodes at FabricAddr(rack):2379
// through a forwarder whose listening socket lives in the fabric namespace.
// Traffic thus stays on loopback and inside the lab's namespaces.
type Datastore struct {
	Embedded *etcd.Embedded
	// Store is the lab's own client.
	Store datastore.Interface
	// Loopback is the server's client URL in the lab's namespace (for
	// calicoctl run by the lab).
	Loopback string
}

// EndpointFor is the etcd URL for a namespace in rack r.
func EndpointFor(r int) string { return fmt.Sprintf("http://%s:%d", FabricAddr(r), EtcdPort) }

func (e *env) startDatastore(ctx context.Context, fab *Fabric, log *slog.Logger) (*Datastore, error) {
	emb, err := etcd.StartEmbedded(ctx, filepath.Join(e.dir, "etcd"), log)
	if err != nil {
		return nil, err
	}
	e.push("stop etcd", emb.Close)
	d := &Datastore{Embedded: emb, Loopback: emb.Endpoints()[0]}
	store, err := backend.New(datastore.Config{Type: datastore.TypeEtcdV3, Etcd: datastore.EtcdConfig{Endpoints: emb.Endpoints()}})
	if err != nil {
		return nil, fmt.Errorf("connect to the lab's etcd: %w", err)
	}
	d.Store = store
	e.push("close datastore client", store.Close)
	if err := e.forward(fab, strings.TrimPrefix(d.Loopback, "http://")); err != nil {
		return nil, err
	}
	return d, nil
}

// forward listens on 0.0.0.0:EtcdPort inside the fabric namespace and pipes
// each connection to target on loopback. A socket belongs to the
// namespace it was made in, whatever thread later serves it.
func (e *env) forward(fab *Fabric, target string) error {
	var ln net.Listener
	if err := fab.NS.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", EtcdPort))
		return err
	}); err != nil {
		return fmt.Errorf("listen for etcd in the fabric namespace: %w", err)
	}
	fwd := tcpfwd.Serve(ln, target)
	e.push("stop the etcd forwarder", fwd.Close)
	return nil
}
