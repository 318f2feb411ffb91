package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every response of Handler. Scripts and
// styles come only from this origin (no inline code); the pages talk only to
// their own origin (REST and the /ws/agent websocket); remote audio plays from
// MediaStream objects, which CSP does not restrict.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; " +
	"manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Cache policies. Pages always revalidate (cheap, thanks to the ETag) so a
// new callgw version is picked up on the next load; assets may be reused for
// a few minutes without asking, then revalidate.
const (
	cachePage  = "no-cache"
	cacheAsset = "public, max-age=300, must-revalidate"
)

type asset struct {
	body  []byte
	ctype string
	etag  string
	cache string
}

// Handler returns the http.Handler that serves the pages:
//
//	GET /agent       the agent softphone (agent.html)
//	GET /supervisor  the supervisor dashboard (supervisor.html)
//	GET /static/...  the JavaScript modules, CSS and icons
//
// Anything else under those paths is 404; methods other than GET and HEAD
// are 405. Responses carry a strong ETag and honour If-None-Match.
func Handler() http.Handler {
	assets := make(map[string]*asset)
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		a := &asset{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, cache: cacheAsset}
		switch p {
		case "static/agent.html":
			a.cache = cachePage
			assets["/agent"] = a
		case "static/supervisor.html":
			a.cache = cachePage
			assets["/supervisor"] = a
		default:
			assets["/"+p] = a
		}
		return nil
	})
	if err != nil {
		// The embedded tree is fixed at build time; failing to walk it is a
		// build defect, caught by the package tests.
		panic("web: embedded assets: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "microphone=(self), camera=(), geolocation=()")
		p := strings.TrimSuffix(r.URL.Path, "/")
		a, ok := assets[p]
		if !ok || strings.HasSuffix(p, ".html") {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Cache-Control", a.cache)
		h.Set("ETag", a.etag)
		h.Set("Content-Type", a.ctype)
		// ServeContent answers If-None-Match with 304 and handles HEAD and Range.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
