package storage

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callgw/callgw/internal/testkit/s3test"
)

func filepathGlob(p string) ([]string, error) { return filepath.Glob(p) }

// startVersity runs a real S3-compatible server for the test.
func startVersity(t *testing.T) S3Config {
	t.Helper()
	srv := s3test.Start(t)
	return S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Insecure: true, CreateBucket: true}
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
