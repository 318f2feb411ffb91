package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"go/build"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// versityBin finds the versitygw binary that scripts/test.sh installs.
func versityBin() string {
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
		if p := filepath.Join(dir, "versitygw"); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }

func filepathGlob(p string) ([]string, error) { return filepath.Glob(p) }

// startVersity runs a real S3-compatible server (versitygw over a temp
// directory) on a free loopback port for the test.
func startVersity(t *testing.T) S3Config {
	t.Helper()
	bin := versityBin()
	if bin == "" {
		t.Skip("versitygw not installed: scripts/test.sh installs it (go install github.com/versity/versitygw/cmd/versitygw); S3 tests skipped")
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
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "posix", dir)
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
	return S3Config{Endpoint: addr, Bucket: "callgw-" + strings.ToLower(hex.EncodeToString(buf[:4])), Region: "us-east-1",
		AccessKey: access, SecretKey: secret, Insecure: true, CreateBucket: true}
}

func TestS3(t *testing.T) {
	cfg := startVersity(t)
	ctx := context.Background()
	s, err := NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s)

	t.Run("missing bucket refused", func(t *testing.T) {
		c := cfg
		c.Bucket, c.CreateBucket = "absent-bucket", false
		if _, err := NewS3(ctx, c); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("sse setting", func(t *testing.T) {
		c := cfg
		c.SSE = true
		s2, err := NewS3(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Put(ctx, "sse/x", strings.NewReader("y"), 1, Meta{}); err != nil {
			t.Fatalf("put with SSE-S3 header: %v", err)
		}
		rc, _, err := s2.Get(ctx, "sse/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "y" {
			t.Fatalf("got %q", b)
		}
	})
}
