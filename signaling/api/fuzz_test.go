package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/api"
)

// The fuzz targets drive the real API handler (and a real billing ledger on
// a real redis-server) with arbitrary requests. Call control is a
// deterministic stand-in that answers like the controller: an invalid
// number, a permission refusal, Meta's refusal, a store outage, draining or
// success, chosen by the number's last digit, so that every error mapping is
// reached. The invariants: never a 500; a JSON body (CSV only on 200); a
// documented error code with a fixed message; a 400 uses no resource.

const (
	fuzzKey    = "fuzz-admin-key-0123456789"
	fuzzSecret = "fuzz-token-secret-0123456789"
)

var documentedCodes = map[string]bool{
	"bad_request": true, "unauthenticated": true, "forbidden": true, "not_found": true, "no_agent": true,
	"invalid_number": true, "bad_message": true, "unavailable": true, "meta_error": true, "unknown_call": true,
	"template_required": true, "no_permission": true, "expired": true, "revoked": true, "request_limit_24h": true,
	"request_limit_7d": true, "request_limit_meta": true, "connected_call_limit": true, "permanent_exists": true,
	"meta_unavailable": true, "redis_unavailable": true, "outside_window": true, "unknown_number": true,
}

var leakFragments = []string{"127.0.0.1", "tcp", "i/o timeout", "dial", "redis:", "EOF", "connection refused", "signaling:", "billing:", "permissions:"}

// controllerStandIn answers like signaling.Controller, by the last digit of
// the number.
type controllerStandIn struct{ used atomic.Int64 }

func (c *controllerStandIn) outcome(to string) (permissions.Decision, error) {
	c.used.Add(1)
	u, err := phone.ParseUser(to)
	if err != nil {
		return permissions.Decision{}, fmt.Errorf("%w: %w", signaling.ErrInvalidNumber, err)
	}
	key := u.Key()
	d := permissions.Decision{Reason: permissions.ReasonNoPermission, RequestsLeft24h: 1, RequestsLeft7d: 2}
	switch key[len(key)-1] {
	case '0':
		return d, &signaling.PermissionError{Reason: permissions.ReasonNoPermission, Decision: d}
	case '1':
		return d, &signaling.MetaError{Code: 0, Err: errors.New("post https://graph: read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout")}
	case '2':
		return permissions.Decision{Reason: permissions.ReasonRedisUnavailable}, fmt.Errorf("%w: %w", signaling.ErrStore,
			&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	case '3':
		return d, signaling.ErrDraining
	case '4':
		return d, fmt.Errorf("redis: %w", context.DeadlineExceeded)
	}
	return permissions.Decision{Allowed: true}, nil
}

func (c *controllerStandIn) Dial(_ context.Context, agent, to string) (agents.CallInfo, error) {
	if _, err := c.outcome(to); err != nil {
		return agents.CallInfo{}, err
	}
	return agents.CallInfo{ID: "wacid.fuzz", Direction: "business_initiated", To: to, State: "dialing", Agent: agent, CreatedAt: time.Unix(0, 0)}, nil
}

func (c *controllerStandIn) PermissionState(_ context.Context, to string) (permissions.Decision, error) {
	return c.outcome(to)
}

func (c *controllerStandIn) RequestPermission(_ context.Context, to, _ string) (permissions.Decision, error) {
	return c.outcome(to)
}

func (c *controllerStandIn) Live() []agents.CallInfo { return nil }

func (c *controllerStandIn) PermissionOutcomes(context.Context, string) (map[string]int64, error) {
	c.used.Add(1)
	return map[string]int64{"sent": 0, "accepted": 0, "rejected": 0}, nil
}

func (c *controllerStandIn) AvailableAgents() map[string]bool { return map[string]bool{"alice": true} }

func (c *controllerStandIn) SendCallButton(_ context.Context, b signaling.CallButton) (string, error) {
	if _, err := c.outcome(b.To); err != nil {
		return "", err
	}
	return "wamid.fuzz", nil
}

func (c *controllerStandIn) NumberSettings(_ context.Context, pnid string) (json.RawMessage, error) {
	c.used.Add(1)
	switch pnid {
	case "100000000000001":
		return json.RawMessage(`{"calling":{"status":"ENABLED"}}`), nil
	case "100000000000002":
		return nil, nil
	case "100000000000003":
		return nil, fmt.Errorf("%w: settings: %w", signaling.ErrStore, io.EOF)
	}
	return nil, signaling.ErrUnknownNumber
}

// countingLedger is the real ledger, counted.
type countingLedger struct {
	*billing.Ledger
	used atomic.Int64
}

func (l *countingLedger) Usage(ctx context.Context, month string) (*billing.UsageReport, error) {
	l.used.Add(1)
	return l.Ledger.Usage(ctx, month)
}

func (l *countingLedger) Calls(ctx context.Context, f billing.CallFilter) ([]billing.Entry, string, error) {
	l.used.Add(1)
	return l.Ledger.Calls(ctx, f)
}

type noopHandler struct{}

func (noopHandler) Welcome(*agents.Session) []agents.CallInfo                            { return nil }
func (noopHandler) Handle(context.Context, *agents.Session, *agents.ClientMessage) error { return nil }
func (noopHandler) PresenceChanged(*agents.Session)                                      {}
func (noopHandler) Closed(*agents.Session)                                               {}

type fuzzEnv struct {
	h      http.Handler
	calls  *controllerStandIn
	ledger *countingLedger
	agent  string // an agent token
	super  string // a supervisor token
}

// env builds the API a fuzz target drives, on its own redis-server.
func env(t testing.TB) *fuzzEnv {
	t.Helper()
	rs := redistest.Start(t)
	rc, err := billing.SampleRateCard()
	if err != nil {
		t.Fatal(err)
	}
	l, err := billing.NewLedger(rs.Client(), rc, billing.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := agents.NewHub(agents.HubConfig{TokenSecret: []byte(fuzzSecret)}, noopHandler{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	e := &fuzzEnv{calls: &controllerStandIn{}, ledger: &countingLedger{Ledger: l}}
	a, err := api.New(api.Config{APIKeys: []string{fuzzKey}, TokenSecret: []byte(fuzzSecret), MaskNumbers: true},
		e.calls, e.ledger, hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.h = a.Handler()
	e.agent, _ = agents.IssueToken([]byte(fuzzSecret), "alice", agents.RoleAgent, time.Hour, time.Now())
	e.super, _ = agents.IssueToken([]byte(fuzzSecret), "sue", agents.RoleSupervisor, time.Hour, time.Now())
	return e
}

func (e *fuzzEnv) auth(role uint8) string {
	switch role % 4 {
	case 0:
		return "Bearer " + fuzzKey
	case 1:
		return "bearer " + e.agent
	case 2:
		return "BEARER " + e.super
	}
	return ""
}

// serve sends req and checks the invariants; it returns the status.
func (e *fuzzEnv) serve(t *testing.T, req *http.Request) int {
	t.Helper()
	callsBefore, ledgerBefore := e.calls.used.Load(), e.ledger.used.Load()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	st := rec.Code
	if st == http.StatusInternalServerError || st == 0 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, st, rec.Body.String())
	}
	if st == http.StatusBadRequest && (e.calls.used.Load() != callsBefore || e.ledger.used.Load() != ledgerBefore) {
		// Only the stand-in's own ParseUser may refuse after use; the
		// handler must have judged the same input first.
		t.Fatalf("%s %s: 400 after using call control or the ledger: %s", req.Method, req.URL, rec.Body.String())
	}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
		if st != http.StatusOK {
			t.Fatalf("CSV with status %d", st)
		}
		return st
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: %d not JSON: %q", req.Method, req.URL, st, rec.Body.String())
	}
	e2, isErr := body["error"].(map[string]any)
	if (st >= 400) != isErr {
		t.Fatalf("status %d with body %s", st, rec.Body.String())
	}
	if isErr {
		code, _ := e2["code"].(string)
		msg, _ := e2["message"].(string)
		if !documentedCodes[code] || msg == "" {
			t.Fatalf("undocumented error %s", rec.Body.String())
		}
		for _, l := range leakFragments {
			if strings.Contains(msg, l) {
				t.Fatalf("message leaks %q: %s", l, msg)
			}
		}
	}
	return st
}

func newReq(t *testing.T, method, target, auth string, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://callgw"+target, strings.NewReader(body))
	if err != nil {
		return nil
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}

func FuzzGetCalls(f *testing.F) {
	for _, q := range []string{"", "cursor=garbage", "cursor=-1", "cursor=123456789012345678901234567890", "cursor=5",
		"number=abc", "number=%2B447700900123", "limit=0", "limit=5", "limit=99999999999999999999", "direction=user_initiated",
		"direction=x", "outcome=answered", "from=2026-11-01T00:00:00Z&to=2026-10-01T00:00:00Z", "agent=a%20b", "agent=bob",
		"format=csv", "format=xml", "number=US.13491208655302741918", "limit=%00", "cursor=%E2%80%8B1"} {
		f.Add(q, uint8(0))
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, query string, role uint8) {
		if req := newReq(t, "GET", "/api/v1/calls?"+query, e.auth(role), ""); req != nil {
			e.serve(t, req)
		}
	})
}

func FuzzGetUsage(f *testing.F) {
	for _, q := range []string{"", "month=2026-11", "month=2026-13", "month=abc", "month=0000-01", "month=2026-1",
		"format=csv", "format=xml", "month=2026-11&format=json", "month=%FF"} {
		f.Add(q, uint8(0))
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, query string, role uint8) {
		if req := newReq(t, "GET", "/api/v1/usage?"+query, e.auth(role), ""); req != nil {
			e.serve(t, req)
		}
	})
}

func FuzzGetPermission(f *testing.F) {
	for _, n := range []string{"447700900125", "+447700900120", "abc", "US.13491208655302741918", "", "1", strings.Repeat("9", 100),
		"447700900122", "447700900123", "447700900124", "447700900121", "%", "../calls"} {
		f.Add(n)
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, number string) {
		if req := newReq(t, "GET", "/api/v1/permissions/"+url.PathEscape(number), e.auth(0), ""); req != nil {
			e.serve(t, req)
		}
	})
}

func FuzzPostPermissionRequest(f *testing.F) {
	for _, b := range []string{`{"to":"+447700900125"}`, `{"to":"+447700900120","text":"may we call?"}`, `{"to":"not a number"}`,
		`{}`, ``, `nope`, `{"to":"US.13491208655302741918"}`, `{"to":1}`, `{"to":"+447700900122"}{}`, `{"to":"+447700900121"}`,
		`{"to":"+447700900123"}`, `{"to":"+447700900124"}`, `[1,2]`, `{"to":"+447700900125","text":"` + strings.Repeat("é", 1100) + `"}`} {
		f.Add([]byte(b))
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if req := newReq(t, "POST", "/api/v1/permission-requests", e.auth(0), string(body)); req != nil {
			e.serve(t, req)
		}
	})
}

func FuzzPostCall(f *testing.F) {
	for _, b := range []string{`{"to":"+447700900125"}`, `{"to":"+447700900125","agent":"bob"}`, `{"to":"not a number"}`,
		`{"to":"+447700900120","agent":"a b"}`, `{"to":"US.13491208655302741918","agent":"alice"}`, `{}`, ``, `{"agent":"x"}`,
		`{"to":"+447700900122","agent":"alice"}`, `{"to":"+447700900121","agent":"alice"}`, `{"to":"+447700900123"}`,
		`{"to":"+447700900124"}`, `{"to":"+447700900125","agent":"` + strings.Repeat("a", 200) + `"}`} {
		f.Add([]byte(b), uint8(0))
		f.Add([]byte(b), uint8(1))
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, body []byte, role uint8) {
		if req := newReq(t, "POST", "/api/v1/calls", e.auth(role), string(body)); req != nil {
			e.serve(t, req)
		}
	})
}

func FuzzPostCallButton(f *testing.F) {
	for _, b := range []string{`{"to":"+447700900125","text":"call us"}`, `{"to":"+447700900120","text":"x"}`, `{"to":"not a number","text":"x"}`,
		`{"to":"+447700900125"}`, `{"to":"+447700900125","text":"  "}`, `{}`, ``, `{"to":"+447700900122","text":"x","ttl_minutes":-1}`,
		`{"to":"+447700900121","text":"x","display_text":"` + strings.Repeat("d", 40) + `"}`, `{"to":"US.13491208655302741918","text":"x"}`} {
		f.Add([]byte(b))
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if req := newReq(t, "POST", "/api/v1/call-buttons", e.auth(0), string(body)); req != nil {
			e.serve(t, req)
		}
	})
}

func FuzzGetNumberSettings(f *testing.F) {
	for _, id := range []string{"100000000000001", "100000000000002", "100000000000003", "999", "abc", "", "../calls", strings.Repeat("1", 40)} {
		f.Add(id)
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, id string) {
		if req := newReq(t, "GET", "/api/v1/numbers/"+url.PathEscape(id)+"/settings", e.auth(0), ""); req != nil {
			e.serve(t, req)
		}
	})
}

// FuzzAuthorization: any Authorization header on every endpoint (config and
// live have no other input).
func FuzzAuthorization(f *testing.F) {
	for _, h := range []string{"Bearer " + fuzzKey, "bearer " + fuzzKey, "Bearer", "Bearer ", "Basic " + fuzzKey, "", "Bearer a.b.c",
		"Bearer  " + fuzzKey + "  ", "bEaReR x", "Bearer \x00"} {
		for ep := range uint8(8) {
			f.Add(h, ep)
		}
	}
	e := env(f)
	f.Fuzz(func(t *testing.T, header string, ep uint8) {
		eps := []struct{ method, path, body string }{
			{"GET", "/api/v1/config", ""}, {"GET", "/api/v1/live", ""}, {"GET", "/api/v1/usage", ""}, {"GET", "/api/v1/calls", ""},
			{"GET", "/api/v1/permissions/447700900125", ""}, {"POST", "/api/v1/permission-requests", `{"to":"+447700900125"}`},
			{"POST", "/api/v1/calls", `{"to":"+447700900125","agent":"alice"}`}, {"DELETE", "/api/v1/nope", ""},
		}
		x := eps[int(ep)%len(eps)]
		req := newReq(t, x.method, x.path, "", x.body)
		if req == nil {
			return
		}
		req.Header["Authorization"] = []string{header}
		st := e.serve(t, req)
		if x.path != "/api/v1/config" && x.path != "/api/v1/nope" && st != http.StatusUnauthorized {
			// Accepted: the header must be a bearer credential we issued.
			tok, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(header)), "bearer ")
			tok = strings.TrimSpace(tok)
			if !ok || (tok != strings.ToLower(fuzzKey) && tok != strings.ToLower(e.agent) && tok != strings.ToLower(e.super)) {
				t.Fatalf("header %q accepted with %d", header, st)
			}
		}
	})
}
