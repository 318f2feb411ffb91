// Package s3test runs a real S3-compatible server for tests: versitygw
// (installed by scripts/test.sh) over a temp directory, on a free loopback
// port, stopped when the test ends.
package s3test

import (
	"crypto/rand"
	"encoding/hex"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Server is a running S3-compatible endpoint and its credentials.
type Server struct {
	Endpoint  string // host:port, plain HTTP
	Bucket    string // a fresh bucket name (not created)
	Region    string
	AccessKey string
	SecretKey string
}

// Bin finds the versitygw binary: $CALLGW_VERSITYGW, $PATH, $GOBIN, then
// $GOPATH/bin; "" when absent.
func Bin() string {
	if p := os.Getenv("CALLGW_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(build.Default.GOPATH, "bin")} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// Start runs versitygw for t, or skips t when it is not installed.
func Start(t testing.TB) Server {
	t.Helper()
	bin := Bin()
	if bin == "" {
		t.Skip("versitygw not installed: scripts/test.sh installs it (go install github.com/versity/versitygw/cmd/versitygw); S3 test skipped")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	access, secret := "callgwtest", hex.EncodeToString(buf)
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "posix", t.TempDir())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw did not listen on %s: %s", addr, b)
		}
		time.Sleep(20 * time.Millisecond) // polling a port that has no readiness event
	}
	return Server{Endpoint: addr, Bucket: "callgw-" + hex.EncodeToString(buf[:4]), Region: "us-east-1",
		AccessKey: access, SecretKey: secret}
}
