package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callgw/callgw/internal/clock"
)

// LinkSigner makes and checks time-limited links to objects of a store that
// has no presigning of its own (the local directory): BaseURL/<key>?exp=<unix>&sig=<hex>,
// sig = HMAC-SHA256(secret, key "\n" exp).
type LinkSigner struct {
	secret  []byte
	baseURL string
	clk     clock.Clock
}

// NewLinkSigner returns a signer; secret must be at least 32 bytes, baseURL
// is where LinkHandler is mounted (e.g. "https://gw.example/media").
func NewLinkSigner(secret []byte, baseURL string, clk clock.Clock) (*LinkSigner, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("%w: link secret shorter than 32 bytes", ErrBadConfig)
	}
	if _, err := url.Parse(baseURL); err != nil || baseURL == "" {
		return nil, fmt.Errorf("%w: link base URL %q", ErrBadConfig, baseURL)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &LinkSigner{secret: append([]byte(nil), secret...), baseURL: strings.TrimSuffix(baseURL, "/"), clk: clk}, nil
}

func (s *LinkSigner) mac(key string, exp int64) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(key + "\n" + strconv.FormatInt(exp, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns a link to key valid for ttl.
func (s *LinkSigner) Sign(key string, ttl time.Duration) string {
	exp := s.clk.Now().Add(ttl).Unix()
	return s.baseURL + "/" + key + "?exp=" + strconv.FormatInt(exp, 10) + "&sig=" + s.mac(key, exp)
}

// Verify checks a link's key, exp and sig query values.
func (s *LinkSigner) Verify(key, exp, sig string) error {
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: exp %q", ErrBadSignature, exp)
	}
	if !hmac.Equal([]byte(sig), []byte(s.mac(key, e))) {
		return ErrBadSignature
	}
	if s.clk.Now().Unix() > e {
		return fmt.Errorf("%w: expired", ErrBadSignature)
	}
	return nil
}

// LinkHandler serves GET /<key>?exp=&sig= from store after checking the
// signature; mount it with http.StripPrefix at the signer's base path.
func LinkHandler(store Store, s *LinkSigner) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		key := strings.TrimPrefix(r.URL.Path, "/")
		if ValidKey(key) != nil {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		if err := s.Verify(key, q.Get("exp"), q.Get("sig")); err != nil {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		rc, obj, err := store.Get(r.Context(), key)
		if errors.Is(err, ErrNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, "storage error", http.StatusBadGateway)
			return
		}
		defer rc.Close()
		if obj.ContentType != "" {
			w.Header().Set("Content-Type", obj.ContentType)
		}
		w.Header().Set("Content-Length", strconv.FormatInt(obj.Size, 10))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = io.Copy(w, rc)
	})
}
