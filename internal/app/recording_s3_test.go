package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/storage"
)

// versitygw finds the S3 gateway scripts/test.sh installs (as storage's tests do).
func versitygw() string {
	if p := os.Getenv("CALLGW_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(build.Default.GOPATH, "bin")} {
		if p := filepath.Join(dir, "versitygw"); dir != "" {
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p
			}
		}
	}
	return ""
}

// startS3 runs a real S3-compatible server (versitygw over a temp
// directory) on a free loopback port and returns the app flags using it.
func startS3(t *testing.T) []string {
	t.Helper()
	bin := versitygw()
	if bin == "" {
		t.Skip("versitygw not installed: scripts/test.sh installs it; S3 test skipped")
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
	return []string{"-s3-endpoint", addr, "-s3-bucket", "callgw-" + hex.EncodeToString(buf[:4]), "-s3-region", "us-east-1",
		"-s3-access-key", access, "-s3-secret-key", secret, "-s3-insecure"}
}

// TestRecordS3AndRetention: Meta's recording and transcript land in a real
// S3-compatible store (presigned links work); the retention job, run with a
// manual clock past the number's retention, deletes the objects and their
// index entries.
func TestRecordS3AndRetention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, append(startS3(t), "-recording=meta", "-recording-retention-days", "30")...)
	if _, ok := ta.Recordings.Store().(*storage.S3); !ok {
		t.Fatalf("store is %T, want S3", ta.Recordings.Store())
	}
	id := recordedMetaCall(t, ctx, ta)
	es, err := ta.Recordings.Archive().Call(ctx, "test", id)
	if err != nil || len(es) != 2 {
		t.Fatalf("entries %v %v", es, err)
	}
	for _, e := range es {
		rc, obj, err := ta.Recordings.Store().Get(ctx, e.Key)
		if err != nil {
			t.Fatalf("S3 object %s: %v", e.Key, err)
		}
		rc.Close()
		if obj.Size != e.Size || e.ExpiresAt.Sub(e.StoredAt) != 30*24*time.Hour {
			t.Fatalf("object %+v entry %+v", obj, e)
		}
		if !strings.HasPrefix(e.Key, DemoPhoneNumberID+"/") || !strings.Contains(e.Key, "/"+strings.ReplaceAll(id, "/", "_")+"/") {
			t.Fatalf("object key %q", e.Key)
		}
	}
	link, err := ta.Recordings.Archive().Link(ctx, "test", id, recording.KindRecording, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(link); !strings.Contains(u.RawQuery, "X-Amz-Signature") {
		t.Fatalf("link %s is not presigned", link)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "OggS") {
		t.Fatalf("presigned GET: %d", resp.StatusCode)
	}

	// Retention: 29 days later nothing goes; 31 days later both go.
	for _, c := range []struct {
		after time.Duration
		want  int
	}{{29 * 24 * time.Hour, 0}, {31 * 24 * time.Hour, 2}} {
		clk := clock.NewManual(time.Now().Add(c.after))
		r, err := recording.NewRetainer(ta.Recordings.Store(), ta.Redis, recording.RetainerConfig{Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		waitFor(t, ctx, "the retention lease", func() bool {
			n, err = r.RunOnce(ctx)
			return !errors.Is(err, recording.ErrLeaseHeld)
		})
		if err != nil || n != c.want {
			t.Fatalf("after %v: removed %d (%v), want %d", c.after, n, err, c.want)
		}
	}
	if _, err := ta.Recordings.Archive().Call(ctx, "test", id); !errors.Is(err, recording.ErrNotFound) {
		t.Fatalf("index after retention: %v", err)
	}
	for _, e := range es {
		if _, _, err := ta.Recordings.Store().Get(ctx, e.Key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("S3 object %s after retention: %v", e.Key, err)
		}
	}
}
