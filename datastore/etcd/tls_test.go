package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir and returns their paths.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tabby test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+".pem", "CERTIFICATE", der), write(cn+"-key.pem", "EC PRIVATE KEY", kder)
	}
	var p pki
	p.ca = write("ca.pem", "CERTIFICATE", caDER)
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func TestTLSWithClientCertificates(t *testing.T) {
	t.Parallel()
	p := newPKI(t, t.TempDir())
	ctx := context.Background()
	e, err := etcd.StartEmbedded(ctx, t.TempDir(), etcdtest.Logger(t), etcd.WithClientTLS(transport.TLSInfo{
		CertFile: p.serverCert, KeyFile: p.serverKey, TrustedCAFile: p.ca, ClientCertAuth: true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ep := e.Endpoints()[0]
	if ep[:8] != "https://" {
		t.Fatalf("endpoint %s is not https", ep)
	}

	good, err := etcd.New(datastore.EtcdConfig{Endpoints: []string{ep}, CACertFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Create(ctx, pool("p", "10.0.0.0/24")); err != nil {
		t.Fatalf("create over TLS: %v", err)
	}
	if _, err := good.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"}); err != nil {
		t.Fatalf("get over TLS: %v", err)
	}

	// Without a client certificate, or trusting the wrong CA, requests fail
	// (as unavailable: the connection never comes up) instead of hanging.
	other := newPKI(t, t.TempDir())
	for name, cfg := range map[string]datastore.EtcdConfig{
		"no client certificate": {Endpoints: []string{ep}, CACertFile: p.ca, RequestTimeout: time.Second},
		"untrusted server":      {Endpoints: []string{ep}, CACertFile: other.ca, CertFile: p.clientCert, KeyFile: p.clientKey, RequestTimeout: time.Second},
	} {
		s, err := etcd.New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"})
		s.Close()
		if !errors.Is(err, datastore.ErrUnavailable) {
			t.Errorf("%s: get = %v, want ErrUnavailable", name, err)
		}
	}
}
