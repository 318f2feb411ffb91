package recording

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeMeta plays Meta's media endpoints as the reference describes them:
// GET /v23.0/<MEDIA_ID> (bearer) answers {url, mime_type, sha256, file_size, id}
// with a fresh URL; GET /dl/<MEDIA_ID>?gen=N (bearer) serves the bytes while
// that URL generation is live. Tests expire URLs and inject failures.
type fakeMeta struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu        sync.Mutex
	media     map[string][]byte
	mime      map[string]string
	gen       map[string]int // current live URL generation per media id
	fail      map[string]int // downloads left to fail with 500
	corrupt   map[string]bool
	gone      map[string]bool
	infoCalls int
	downloads int
}

func newFakeMeta(t *testing.T) *fakeMeta {
	m := &fakeMeta{t: t, token: "test-token", media: map[string][]byte{}, mime: map[string]string{},
		gen: map[string]int{}, fail: map[string]int{}, corrupt: map[string]bool{}, gone: map[string]bool{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMeta) graphURL() string { return m.srv.URL + "/v23.0" }

// add stores media and returns the webhook's notice for it (URL generation 1).
func (m *fakeMeta) add(id, mime string, data []byte) (sha, url string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.media[id], m.mime[id], m.gen[id] = data, mime, 1
	sum := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(sum[:]), m.urlLocked(id)
}

func (m *fakeMeta) urlLocked(id string) string {
	return fmt.Sprintf("%s/dl/%s?gen=%d", m.srv.URL, id, m.gen[id])
}

// expire makes every URL issued so far for id stop working.
func (m *fakeMeta) expire(id string) {
	m.mu.Lock()
	m.gen[id]++
	m.mu.Unlock()
}

func (m *fakeMeta) counts() (info, downloads int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infoCalls, m.downloads
}

func graphErr(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "OAuthException", "code": code}})
}

func (m *fakeMeta) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+m.token {
		graphErr(w, http.StatusUnauthorized, 190, "Invalid OAuth access token")
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/v23.0/"):
		id := strings.TrimPrefix(r.URL.Path, "/v23.0/")
		m.infoCalls++
		data, ok := m.media[id]
		if !ok || m.gone[id] {
			graphErr(w, http.StatusBadRequest, 100, "Unsupported get request. Object with ID '"+id+"' does not exist")
			return
		}
		m.gen[id]++ // a fresh URL; older ones expire
		sum := sha256.Sum256(data)
		_ = json.NewEncoder(w).Encode(map[string]any{"messaging_product": "whatsapp", "url": m.urlLocked(id),
			"mime_type": m.mime[id], "sha256": base64.StdEncoding.EncodeToString(sum[:]), "file_size": len(data), "id": id})
	case strings.HasPrefix(r.URL.Path, "/dl/"):
		id := strings.TrimPrefix(r.URL.Path, "/dl/")
		m.downloads++
		data, ok := m.media[id]
		if !ok || m.gone[id] || r.URL.Query().Get("gen") != fmt.Sprint(m.gen[id]) {
			http.Error(w, "URL signature expired", http.StatusNotFound)
			return
		}
		if m.fail[id] > 0 {
			m.fail[id]--
			http.Error(w, "temporarily unavailable", http.StatusInternalServerError)
			return
		}
		if m.corrupt[id] {
			data = append([]byte("X"), data[1:]...)
		}
		w.Header().Set("Content-Type", m.mime[id])
		_, _ = w.Write(data)
	default:
		http.NotFound(w, r)
	}
}
