package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/internal/testkit/s3test"
	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/storage"
)

// startS3 runs a real S3-compatible server and returns the app flags using it.
func startS3(t *testing.T) []string {
	t.Helper()
	srv := s3test.Start(t)
	return []string{"-s3-endpoint", srv.Endpoint, "-s3-bucket", srv.Bucket, "-s3-region", srv.Region,
		"-s3-access-key", srv.AccessKey, "-s3-secret-key", srv.SecretKey, "-s3-insecure"}
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
