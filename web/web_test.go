package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandlerRoutes(t *testing.T) {
	h := Handler()
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantType           string
		wantCache          string
	}{
		{"agent page", http.MethodGet, "/agent", 200, "text/html; charset=utf-8", cachePage},
		{"agent page trailing slash", http.MethodGet, "/agent/", 200, "text/html; charset=utf-8", cachePage},
		{"supervisor page", http.MethodGet, "/supervisor", 200, "text/html; charset=utf-8", cachePage},
		{"agent module", http.MethodGet, "/static/js/agent.js", 200, "text/javascript; charset=utf-8", cacheAsset},
		{"stylesheet", http.MethodGet, "/static/css/app.css", 200, "text/css; charset=utf-8", cacheAsset},
		{"icon", http.MethodGet, "/static/icon.svg", 200, "image/svg+xml", cacheAsset},
		{"head", http.MethodHead, "/agent", 200, "text/html; charset=utf-8", cachePage},
		{"html not served raw", http.MethodGet, "/static/agent.html", 404, "", ""},
		{"unknown path", http.MethodGet, "/static/js/nope.js", 404, "", ""},
		{"root", http.MethodGet, "/", 404, "", ""},
		{"post refused", http.MethodPost, "/agent", 405, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if got := rec.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("CSP = %q", got)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("nosniff missing: %q", got)
			}
			if tc.wantStatus != 200 {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tc.wantType)
			}
			if got := rec.Header().Get("Cache-Control"); got != tc.wantCache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.wantCache)
			}
			if rec.Header().Get("ETag") == "" {
				t.Error("no ETag")
			}
			if tc.method == http.MethodHead && rec.Body.Len() != 0 {
				t.Error("HEAD returned a body")
			}
		})
	}
}

func TestHandlerETagRevalidation(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/static/js/agent.js", nil))
	etag := rec.Header().Get("ETag")
	tests := []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"same etag", etag, http.StatusNotModified},
		{"other etag", `"deadbeef"`, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/static/js/agent.js", nil)
			req.Header.Set("If-None-Match", tc.ifNoneMatch)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d", rec.Code, tc.want)
			}
		})
	}
}

// The CSP forbids inline code; the pages must not rely on any, and every
// asset they reference must exist.
func TestPagesHaveNoInlineCode(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	scriptTag := regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`)
	styleAttr := regexp.MustCompile(`\sstyle\s*=`)
	handlerAttr := regexp.MustCompile(`\son[a-z]+\s*=`)
	ref := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`)
	for _, page := range []string{"/agent", "/supervisor"} {
		t.Run(page, func(t *testing.T) {
			res, err := http.Get(srv.URL + page)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			html := string(b)
			if strings.Contains(html, "<style") || styleAttr.MatchString(html) {
				t.Error("inline style found")
			}
			if handlerAttr.MatchString(html) {
				t.Error("inline event handler found")
			}
			tags := scriptTag.FindAllStringSubmatch(html, -1)
			if len(tags) == 0 || len(tags) != strings.Count(html, "<script") {
				t.Errorf("found %d well-formed script tags of %d", len(tags), strings.Count(html, "<script"))
			}
			for _, m := range tags {
				if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
					t.Errorf("inline script: %q", m[0])
				}
			}
			for _, m := range ref.FindAllStringSubmatch(html, -1) {
				r, err := http.Get(srv.URL + m[1])
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.StatusCode != 200 {
					t.Errorf("%s -> %d", m[1], r.StatusCode)
				}
			}
		})
	}
}

// Every module the pages import must be embedded (no build step to catch it).
func TestModuleImportsResolve(t *testing.T) {
	imp := regexp.MustCompile(`from '\./([a-z]+\.js)'`)
	err := fs.WalkDir(staticFS, "static/js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range imp.FindAllStringSubmatch(string(b), -1) {
			if _, err := staticFS.ReadFile("static/js/" + m[1]); err != nil {
				t.Errorf("%s imports missing %s", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
