package cloudapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	testToken = "EAAG-test-token"
	testPNID  = "106540352242922"
	testWABA  = "102290129340398"
	testSDP   = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE audio\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\na=mid:audio\r\na=setup:active\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\n"
	callID    = "wacid.HBgLOTE3MzU4NTgwMTgwFQIAEhggQTdFMkQzRjlCMEM4NEU1NkE5QjE2QzAxRDJFRjQ1NzgcGAsxNTU1MTQ0MTkwNhUCABUCAA=="
)

// seen is one request as the fake Meta received it.
type seen struct {
	Method, Path, RawQuery, Auth, ContentType string
	Body                                      string
}

// metaServer is a fake Graph API: it checks the version/number prefix and
// the token like Meta, records requests, and answers with reply(n, req),
// n counting from 1.
type metaServer struct {
	*httptest.Server
	hits  atomic.Int64
	mu    sync.Mutex
	reqs  []seen
	reply func(n int64, w http.ResponseWriter, r *http.Request)
}

func newMetaServer(t testing.TB, reply func(n int64, w http.ResponseWriter, r *http.Request)) *metaServer {
	t.Helper()
	m := &metaServer{reply: reply}
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.Close)
	return m
}

func (m *metaServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := m.hits.Add(1)
	m.mu.Lock()
	m.reqs = append(m.reqs, seen{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"), Body: string(body)})
	m.mu.Unlock()
	if !strings.HasPrefix(r.URL.Path, "/v23.0/"+testPNID+"/") && r.URL.Path != "/v23.0/"+testPNID &&
		!strings.HasPrefix(r.URL.Path, "/v23.0/"+testWABA) {
		writeGraphError(w, http.StatusBadRequest, 100, "Unsupported post request", "")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		writeGraphError(w, http.StatusUnauthorized, 190, "Invalid OAuth access token", "")
		return
	}
	m.reply(n, w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, string(body))))
}

func (m *metaServer) requests() []seen {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]seen(nil), m.reqs...)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func writeGraphError(w http.ResponseWriter, status, code int, msg, details string) {
	data := ""
	if details != "" {
		data = `,"error_data":{"messaging_product":"whatsapp","details":"` + details + `"}`
	}
	writeJSON(w, status, `{"error":{"message":"`+msg+`","type":"OAuthException","code":`+strconv.Itoa(code)+
		`,"error_subcode":2494010`+data+`,"fbtrace_id":"AbCdEf123"}}`)
}

// okFor answers each path the way Meta does on success.
func okFor(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/calls"):
		if strings.Contains(readSeenBody(r), `"action":"connect"`) {
			writeJSON(w, 200, `{"messaging_product":"whatsapp","calls":[{"id":"`+callID+`"}]}`)
			return
		}
		writeJSON(w, 200, `{"messaging_product":"whatsapp","success":true}`)
	case strings.HasSuffix(r.URL.Path, "/messages"):
		writeJSON(w, 200, `{"messaging_product":"whatsapp","contacts":[{"input":"447700900123","wa_id":"447700900123"}],"messages":[{"id":"wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgS"}]}`)
	case strings.HasSuffix(r.URL.Path, "/call_permissions"):
		writeJSON(w, 200, permissionsJSON)
	case strings.HasSuffix(r.URL.Path, "/settings") && r.Method == http.MethodGet:
		writeJSON(w, 200, settingsJSON)
	case strings.HasSuffix(r.URL.Path, "/settings"):
		writeJSON(w, 200, `{"success":true}`)
	case strings.HasSuffix(r.URL.Path, "/message_templates"):
		writeJSON(w, 200, `{"id":"594425479261596","status":"PENDING","category":"UTILITY"}`)
	case r.URL.Path == "/v23.0/"+testPNID:
		writeJSON(w, 200, `{"display_phone_number":"+44 7700 900000","verified_name":"Callgw Demo","quality_rating":"GREEN","id":"`+testPNID+`"}`)
	case r.URL.Path == "/v23.0/"+testWABA && strings.Contains(r.URL.Query().Get("fields"), "call_analytics"):
		writeJSON(w, 200, callAnalyticsJSON)
	case r.URL.Path == "/v23.0/"+testWABA && strings.Contains(r.URL.Query().Get("fields"), "pricing_analytics"):
		writeJSON(w, 200, pricingAnalyticsJSON)
	default:
		writeGraphError(w, 400, 100, "Unknown path", "")
	}
}

// readSeenBody lets okFor route on the body the server already read: the
// handler stores it in the request context.
func readSeenBody(r *http.Request) string {
	if b, ok := r.Context().Value(bodyKey{}).(string); ok {
		return b
	}
	return ""
}

type bodyKey struct{}

const permissionsJSON = `{"messaging_product":"whatsapp","permission":{"status":"temporary","expiration_time":1761286400},
 "actions":[{"action_name":"send_call_permission_request","can_perform_action":true,"limits":[
   {"time_period":"PT24H","max_allowed":1,"current_usage":0,"limit_expiration_time":1760768000},
   {"time_period":"P7D","max_allowed":2,"current_usage":1}]},
  {"action_name":"start_call","can_perform_action":false,"limits":[
   {"time_period":"PT24H","max_allowed":100,"current_usage":100,"limit_expiration_time":"1760768000"}]}]}`

const settingsJSON = `{"calling":{"status":"ENABLED","call_icon_visibility":"DEFAULT","callback_permission_status":"ENABLED",
 "srtp_key_exchange_protocol":"DTLS","call_hours":{"status":"ENABLED","timezone_id":"Europe/London",
 "weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"0900","close_time":"1230"},{"day_of_week":"MONDAY","open_time":"1330","close_time":"1800"}],
 "holiday_schedule":[{"date":"2026-12-25","start_time":"0000","end_time":"2359"}]},
 "sip":{"status":"DISABLED","servers":[]}},"storage_configuration":{"status":"default"}}`

// testClient builds a client on srv with fast retries.
func testClient(t testing.TB, srv string, mod func(*Config)) (*Client, *prometheus.Registry) {
	t.Helper()
	cfg := Config{BaseURL: srv, AccessToken: testToken, PhoneNumberID: testPNID,
		Timeout: 2 * time.Second, MaxRetries: 2, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	c, err := New(cfg, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, reg
}

// closedAddr is a loopback address nothing listens on: dialing it is refused.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// refusingFirstDials returns an HTTP client whose first n dials go to a
// closed port (a real ECONNREFUSED), later ones to the real address.
func refusingFirstDials(t testing.TB, n int64) (*http.Client, *atomic.Int64) {
	dead := closedAddr(t)
	var dials atomic.Int64
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if dials.Add(1) <= n {
			return d.DialContext(ctx, network, dead)
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, &dials
}

var (
	callAnalyticsJSON    = mustRead("testdata/call_analytics.json")
	pricingAnalyticsJSON = mustRead("testdata/pricing_analytics.json")
)

func mustRead(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}
