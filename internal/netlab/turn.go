package netlab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// TURNConfig configures a coturn turnserver run inside a namespace.
type TURNConfig struct {
	IP     string // listening and relay address (required)
	Secret string // static-auth-secret (use-auth-secret, TURN REST API); required
	Realm  string // default "callgw.test"
	// Port (default 3478) serves STUN and TURN over UDP and TCP; TLSPort
	// (default 5349) serves TURN over TLS with a self-signed certificate.
	Port, TLSPort int
}

// TURN is a running coturn.
type TURN struct {
	*Proc
	Cfg TURNConfig
	// CertFile is its self-signed certificate (PEM, IP SAN = Cfg.IP): a Go
	// process trusts it with SSL_CERT_FILE=CertFile.
	CertFile string
}

// CheckTURN reports whether coturn's turnserver is installed.
func CheckTURN() error {
	if _, err := exec.LookPath("turnserver"); err != nil {
		return fmt.Errorf("%w: turnserver not installed (apt-get install coturn)", ErrUnavailable)
	}
	return nil
}

// StartTURN runs turnserver in ns with its own configuration file in a
// temporary directory (never the system service) and waits until it
// listens. The test is skipped when coturn is not installed.
func (l *Lab) StartTURN(ctx context.Context, ns NS, cfg TURNConfig) *TURN {
	l.t.Helper()
	if err := CheckTURN(); err != nil {
		l.t.Skipf("skipping network test: %v", err)
	}
	if cfg.Realm == "" {
		cfg.Realm = "callgw.test"
	}
	if cfg.Port == 0 {
		cfg.Port = 3478
	}
	if cfg.TLSPort == 0 {
		cfg.TLSPort = 5349
	}
	dir := l.t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := selfSigned(cert, key, cfg.IP); err != nil {
		l.t.Fatal(err)
	}
	conf := strings.Join([]string{
		"listening-ip=" + cfg.IP,
		"relay-ip=" + cfg.IP,
		fmt.Sprintf("listening-port=%d", cfg.Port),
		fmt.Sprintf("tls-listening-port=%d", cfg.TLSPort),
		"min-port=49152", "max-port=49999",
		"use-auth-secret",
		"static-auth-secret=" + cfg.Secret,
		"realm=" + cfg.Realm,
		"fingerprint",
		"no-cli", "no-dtls", "no-tlsv1", "no-tlsv1_1",
		"cert=" + cert, "pkey=" + key,
		"pidfile=" + filepath.Join(dir, "turnserver.pid"),
		"userdb=" + filepath.Join(dir, "turndb"),
		"log-file=stdout", "simple-log", "verbose",
		"",
	}, "\n")
	path := filepath.Join(dir, "turnserver.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		l.t.Fatal(err)
	}
	p := l.Start(ns, "turnserver@"+ns.Tag, nil, "turnserver", "-c", path)
	t := &TURN{Proc: p, Cfg: cfg, CertFile: cert}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, want := range []string{
		fmt.Sprintf("UDP listener opened on: %s:%d", cfg.IP, cfg.Port),
		fmt.Sprintf("TLS/TCP listener opened on : %s:%d", cfg.IP, cfg.TLSPort),
	} {
		if err := p.WaitLine(wctx, want); err != nil {
			l.t.Fatalf("netlab: coturn did not start: %v", err)
		}
	}
	return t
}

// selfSigned writes an ECDSA certificate for ip and its key.
func selfSigned(certPath, keyPath, ip string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turn.callgw.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"turn.callgw.test"}, IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
