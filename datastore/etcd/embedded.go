package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// DebugEnv, when set to anything but "" / "0" / "false", lets the embedded
// etcd log at debug level instead of errors only.
const DebugEnv = "TABBY_ETCD_DEBUG"

// Embedded is a single-member etcd server running in this process, listening
// on loopback only.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closing   *atomic.Bool
	closeOnce sync.Once
}

// EmbeddedOption adjusts StartEmbedded.
type EmbeddedOption func(*embedOptions)

type embedOptions struct {
	clientAddr string
	clientTLS  *transport.TLSInfo
}

// WithClientTLS serves clients over TLS (https:// endpoints) with the given
// server certificate; set ClientCertAuth and TrustedCAFile in info to require
// client certificates, as a hardened Calico etcd does.
func WithClientTLS(info transport.TLSInfo) EmbeddedOption {
	return func(o *embedOptions) { o.clientTLS = &info }
}

// WithClientAddress makes the server listen for clients on a fixed loopback
// address ("127.0.0.1:2379", Calico's default endpoint) instead of a free
// port, for a one-machine setup where calicoctl must find it.
func WithClientAddress(hostPort string) EmbeddedOption {
	return func(o *embedOptions) { o.clientAddr = hostPort }
}

// StartEmbedded starts an etcd server whose data lives in dir (created if
// missing; an existing member's data is reused). By default it listens on free
// loopback ports, so several can run at once. ctx bounds the start only; Close
// stops the server. Its logs go to log at error level (see DebugEnv).
func StartEmbedded(ctx context.Context, dir string, log *slog.Logger, opts ...EmbeddedOption) (*Embedded, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	var o embedOptions
	for _, opt := range opts {
		opt(&o)
	}
	clientAddr := "127.0.0.1:0"
	if o.clientAddr != "" {
		if err := checkLoopback(o.clientAddr); err != nil {
			return nil, fmt.Errorf("embedded etcd client address: %w", err)
		}
		clientAddr = o.clientAddr
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data dir: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = "tabby"
	cfg.Dir = dir
	client := url.URL{Scheme: "http", Host: clientAddr}
	if o.clientTLS != nil {
		client.Scheme = "https"
		cfg.ClientTLSInfo = *o.clientTLS
	}
	// The peer port is never dialled (one member), but etcd insists on one;
	// port 0 keeps parallel servers from colliding.
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.InitialClusterToken = "tabby-embedded"
	// Shorter raft timing than the WAN-minded defaults: one member elects
	// itself right away, and a restart on the same data is quick.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	// Nobody else compacts a standalone etcd (kube-apiserver does it for a
	// Kubernetes one), and unbounded history eventually fills the quota.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"

	level := zapcore.ErrorLevel
	if v := os.Getenv(DebugEnv); v != "" && v != "0" && v != "false" {
		level = zapcore.DebugLevel
	}
	cfg.Logger = "zap"
	closing := new(atomic.Bool)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(log.With("component", "etcd"), level, closing))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	case <-e.Server.StopNotify():
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: server stopped while starting", dir)
	case <-ctx.Done():
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, ctx.Err())
	}
	eps := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		eps = append(eps, client.Scheme+"://"+l.Addr().String())
	}
	return &Embedded{etcd: e, endpoints: eps, closing: closing}, nil
}

func checkLoopback(hostPort string) error {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return err
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil || !ip.IsLoopback() {
		return errors.New(hostPort + " is not a loopback IP address and port")
	}
	return nil
}

// Endpoints are the client URLs, for datastore.EtcdConfig.Endpoints.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Err reports a failure of the running server (a listener that died).
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the server and waits until it has stopped. Clients should be
// closed first: open watch streams hold the shutdown up to etcd's request
// timeout. It is safe to call more than once.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
		<-e.etcd.Server.StopNotify()
	})
	return nil
}
