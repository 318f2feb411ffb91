package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/callgw/callgw/internal/clock"
)

// conformance runs the same table on every Store.
func conformance(t *testing.T, s Store) {
	ctx := context.Background()
	key := "15550001111/2026/11/29/wacid.ABC=/recording.ogg"
	body := []byte("OggS fake opus bytes")

	t.Run("put get", func(t *testing.T) {
		if err := s.Put(ctx, key, bytes.NewReader(body), int64(len(body)), Meta{ContentType: "audio/ogg", User: map[string]string{"sha256": "abc"}}); err != nil {
			t.Fatal(err)
		}
		rc, obj, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) || obj.Size != int64(len(body)) || obj.ContentType != "audio/ogg" || obj.User["sha256"] != "abc" {
			t.Fatalf("got %q %+v", got, obj)
		}
	})
	t.Run("unknown size", func(t *testing.T) {
		if err := s.Put(ctx, "a/unknown.bin", iotest.OneByteReader(bytes.NewReader(body)), -1, Meta{}); err != nil {
			t.Fatal(err)
		}
		rc, obj, err := s.Get(ctx, "a/unknown.bin")
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if obj.Size != int64(len(body)) {
			t.Fatalf("size %d", obj.Size)
		}
	})
	t.Run("size mismatch stores nothing", func(t *testing.T) {
		for name, size := range map[string]int64{"short": int64(len(body)) + 5, "long": int64(len(body)) - 5} {
			k := "mismatch/" + name
			err := s.Put(ctx, k, bytes.NewReader(body), size, Meta{})
			if !errors.Is(err, ErrSizeMismatch) {
				t.Fatalf("%s: err %v, want ErrSizeMismatch", name, err)
			}
			if _, _, err := s.Get(ctx, k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: object stored after mismatch: %v", name, err)
			}
		}
	})
	t.Run("bad keys refused", func(t *testing.T) {
		for _, k := range []string{"", "/abs", "../escape", "a/../../b", "a//b", "a/./b", ".meta/x", "a/.tmp", "sp ace", "a\\b", "nul\x00", strings.Repeat("k", MaxKeyLen+1)} {
			if err := s.Put(ctx, k, bytes.NewReader(body), int64(len(body)), Meta{}); !errors.Is(err, ErrBadKey) {
				t.Errorf("Put(%q) = %v, want ErrBadKey", k, err)
			}
			if _, _, err := s.Get(ctx, k); !errors.Is(err, ErrBadKey) {
				t.Errorf("Get(%q) = %v, want ErrBadKey", k, err)
			}
			if err := s.Delete(ctx, k); !errors.Is(err, ErrBadKey) {
				t.Errorf("Delete(%q) = %v, want ErrBadKey", k, err)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		for _, k := range []string{"15550001111/2026/11/29/wacid.ABC=/transcript.json", "15550002222/2026/11/29/c2/recording.ogg"} {
			if err := s.Put(ctx, k, strings.NewReader("x"), 1, Meta{}); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			prefix string
			want   []string
		}{
			{"15550001111/", []string{key, "15550001111/2026/11/29/wacid.ABC=/transcript.json"}},
			{"15550001111/2026/11/29/wacid.ABC=/rec", []string{key}},
			{"1555000", []string{key, "15550001111/2026/11/29/wacid.ABC=/transcript.json", "15550002222/2026/11/29/c2/recording.ogg"}},
			{"nothing/", nil},
		}
		for _, c := range cases {
			objs, err := s.List(ctx, c.prefix)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Key)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
			}
		}
		if _, err := s.List(ctx, "../"); !errors.Is(err, ErrBadKey) {
			t.Errorf("List(../) = %v", err)
		}
	})
	t.Run("replace", func(t *testing.T) {
		if err := s.Put(ctx, key, strings.NewReader("v2"), 2, Meta{}); err != nil {
			t.Fatal(err)
		}
		rc, _, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "v2" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("second delete: %v", err)
		}
	})
	t.Run("signed url", func(t *testing.T) {
		us, ok := s.(URLSigner)
		if !ok {
			t.Skip("store does not sign")
		}
		k := "15550002222/2026/11/29/c2/recording.ogg"
		u, err := us.SignedURL(ctx, k, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != "x" {
			t.Fatalf("GET signed url: %d %q", resp.StatusCode, got)
		}
		bad := strings.Replace(u, "c2/recording", "c2/recordinG", 1)
		resp, err = http.Get(bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("tampered link: %d, want 403", resp.StatusCode)
		}
	})
}

func TestLocal(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	signer, err := NewLinkSigner(bytes.Repeat([]byte("k"), 32), srv.URL+"/media", clk)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := NewLocal(LocalConfig{Dir: dir, Links: signer})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/media/", http.StripPrefix("/media", LinkHandler(s, signer)))
	conformance(t, s)

	t.Run("expired link", func(t *testing.T) {
		u, _ := s.SignedURL(context.Background(), "a/unknown.bin", time.Minute)
		clk.Advance(2 * time.Minute)
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("expired link: %d", resp.StatusCode)
		}
	})
	t.Run("no temp files left", func(t *testing.T) {
		objs, _ := s.List(context.Background(), "")
		for _, o := range objs {
			if strings.Contains(o.Key, ".tmp") || strings.Contains(o.Key, ".meta") {
				t.Fatalf("internal file listed: %s", o.Key)
			}
		}
		left, _ := filepathGlob(dir + "/.tmp/*")
		if len(left) != 0 {
			t.Fatalf("temp files left: %v", left)
		}
	})
	t.Run("failed reader leaves old object", func(t *testing.T) {
		ctx := context.Background()
		_ = s.Put(ctx, "keep/me", strings.NewReader("old"), 3, Meta{})
		err := s.Put(ctx, "keep/me", io.MultiReader(strings.NewReader("ne"), iotest.ErrReader(errors.New("boom"))), -1, Meta{})
		if err == nil {
			t.Fatal("want error")
		}
		rc, _, err := s.Get(ctx, "keep/me")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "old" {
			t.Fatalf("got %q", got)
		}
	})
}

func TestConfigRefused(t *testing.T) {
	if _, err := NewLocal(LocalConfig{}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("local: %v", err)
	}
	for _, c := range []S3Config{{}, {Endpoint: "http://x:9000", Bucket: "b", AccessKey: "a", SecretKey: "s"}, {Endpoint: "x:9000", AccessKey: "a", SecretKey: "s"}, {Endpoint: "x:9000", Bucket: "b"}} {
		if _, err := NewS3(context.Background(), c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("s3 %+v: %v", c, err)
		}
	}
	if _, err := NewLinkSigner([]byte("short"), "http://x", nil); !errors.Is(err, ErrBadConfig) {
		t.Errorf("signer: %v", err)
	}
}

func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"a/b.ogg", "../x", "a/./b", "15550001111/2026/11/29/wacid.A=/recording.ogg"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidKey(key) != nil {
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00 ") {
				t.Fatalf("accepted %q", key)
			}
		}
	})
}
