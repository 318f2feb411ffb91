package agents_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/callgw/callgw/signaling/agents"
)

const wait = 5 * time.Second // deadline for every event a test waits on

// testHandler is a small agents.Handler: dial answers invalid_number, accept
// fails with a plain error, everything else is recorded.
type testHandler struct {
	mu       sync.Mutex
	handled  []*agents.ClientMessage
	presence chan *agents.Session
	closed   chan *agents.Session
}

func newTestHandler() *testHandler {
	return &testHandler{presence: make(chan *agents.Session, 16), closed: make(chan *agents.Session, 16)}
}

func (h *testHandler) Welcome(s *agents.Session) []agents.CallInfo {
	return []agents.CallInfo{{ID: "wacid.ringing", Direction: "user_initiated", State: "ringing", CreatedAt: t0}}
}

func (h *testHandler) Handle(_ context.Context, s *agents.Session, m *agents.ClientMessage) error {
	switch m.Type {
	case agents.TypeDial:
		return &agents.CodedError{Code: agents.CodeInvalidNumber, Message: "not a valid phone number", MetaCode: 0}
	case agents.TypeAccept:
		return errors.New("boom")
	case agents.TypeHangup:
		return agents.Errorf(agents.CodeMetaError, "meta said no", nil)
	}
	h.mu.Lock()
	h.handled = append(h.handled, m)
	h.mu.Unlock()
	s.Send(map[string]string{"type": "handled", "ref": m.Ref})
	return nil
}

func (h *testHandler) PresenceChanged(s *agents.Session) { h.presence <- s }
func (h *testHandler) Closed(s *agents.Session)          { h.closed <- s }

type hubEnv struct {
	hub *agents.Hub
	h   *testHandler
	srv *httptest.Server
	url string
	reg *prometheus.Registry
}

func startHub(t *testing.T, cfg agents.HubConfig) *hubEnv {
	t.Helper()
	if cfg.TokenSecret == nil {
		cfg.TokenSecret = testSecret
	}
	h := newTestHandler()
	reg := prometheus.NewRegistry()
	hub, err := agents.NewHub(cfg, h, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	t.Cleanup(func() {
		_ = hub.Close()
		srv.Close()
	})
	return &hubEnv{hub: hub, h: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http"), reg: reg}
}

func (e *hubEnv) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func token(t *testing.T, agent string) string {
	t.Helper()
	tok, err := agents.IssueToken(testSecret, agent, agents.RoleAgent, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// login dials and says hello; it returns the welcome.
func (e *hubEnv) login(t *testing.T, agent string) (*websocket.Conn, agents.Welcome) {
	t.Helper()
	c := e.dial(t)
	send(t, c, map[string]any{"type": "hello", "v": 1, "token": token(t, agent)})
	var w agents.Welcome
	readInto(t, c, &w)
	if w.Type != agents.TypeWelcome {
		t.Fatalf("welcome: %+v", w)
	}
	return c, w
}

func send(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	if err := c.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	var m map[string]any
	readInto(t, c, &m)
	return m
}

func readInto(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// closeCode reads until the socket closes and returns the close code.
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("socket ended without a close frame: %v", err)
	}
}

func TestHubHelloFailures(t *testing.T) {
	expired, err := agents.IssueToken(testSecret, "a", agents.RoleAgent, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		first     func(c *websocket.Conn) error // nil: send nothing (hello timeout)
		code      string
		closeCode int
		ref       string
	}{
		{"hello timeout", nil, agents.CodeUnauthenticated, 4001, ""},
		{"bad token", func(c *websocket.Conn) error {
			return c.WriteJSON(map[string]any{"type": "hello", "v": 1, "token": "not.a.token", "ref": "h1"})
		}, agents.CodeUnauthenticated, 4001, "h1"},
		{"expired token", func(c *websocket.Conn) error {
			return c.WriteJSON(map[string]any{"type": "hello", "v": 1, "token": expired})
		}, agents.CodeUnauthenticated, 4001, ""},
		{"version 2", func(c *websocket.Conn) error {
			return c.WriteJSON(map[string]any{"type": "hello", "v": 2, "token": token(t, "a"), "ref": "h2"})
		}, agents.CodeUnsupportedVersion, 4002, "h2"},
		{"first message not hello", func(c *websocket.Conn) error {
			return c.WriteJSON(map[string]any{"type": "ping", "ref": "h3"})
		}, agents.CodeUnauthenticated, 4001, "h3"},
		{"hello without token", func(c *websocket.Conn) error {
			return c.WriteJSON(map[string]any{"type": "hello", "v": 1, "ref": "h4"})
		}, agents.CodeUnauthenticated, 4001, "h4"},
		{"binary hello", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"hello"}`))
		}, agents.CodeBadMessage, 4001, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startHub(t, agents.HubConfig{HelloTimeout: 200 * time.Millisecond})
			c := e.dial(t)
			if tc.first != nil {
				if err := tc.first(c); err != nil {
					t.Fatal(err)
				}
			}
			var em agents.ErrorMsg
			readInto(t, c, &em)
			if em.Type != agents.TypeError || em.Code != tc.code || em.Ref != tc.ref {
				t.Fatalf("got %+v, want code %s ref %q", em, tc.code, tc.ref)
			}
			if got := closeCode(t, c); got != tc.closeCode {
				t.Fatalf("close code %d, want %d", got, tc.closeCode)
			}
			if n := len(e.hub.Sessions(nil)); n != 0 {
				t.Fatalf("%d sessions after a failed hello", n)
			}
		})
	}
}

func TestHubSession(t *testing.T) {
	e := startHub(t, agents.HubConfig{
		ICEServers: []agents.ICEServer{{URLs: []string{"stun:stun.example.org:3478"}}},
		Settings:   agents.Settings{MaskNumbers: true, RingTimeoutS: 25},
	})
	c, w := e.login(t, "alice")
	if w.V != agents.Version || w.Agent != "alice" || w.Role != agents.RoleAgent || w.Presence != agents.Away ||
		!strings.HasPrefix(w.Session, "s-") || len(w.Calls) != 1 || w.Calls[0].ID != "wacid.ringing" ||
		len(w.ICEServers) != 1 || !w.Settings.MaskNumbers || w.Settings.RingTimeoutS != 25 {
		t.Fatalf("welcome %+v", w)
	}
	if got := gauge(t, e.reg, "callgw_agents_connected"); got != 1 {
		t.Fatalf("agents_connected %v", got)
	}

	t.Run("ping pong", func(t *testing.T) {
		send(t, c, map[string]any{"type": "ping", "ref": "p1"})
		if m := read(t, c); m["type"] != "pong" || m["ref"] != "p1" {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("presence echo", func(t *testing.T) {
		send(t, c, map[string]any{"type": "presence", "status": "available", "ref": "pr"})
		var pm agents.PresenceMsg
		readInto(t, c, &pm)
		if pm.Type != agents.TypePresence || pm.Status != agents.Available || pm.Ref != "pr" {
			t.Fatalf("got %+v", pm)
		}
		select {
		case s := <-e.h.presence:
			if s.Agent != "alice" || s.Presence() != agents.Available {
				t.Fatalf("presence changed: %s %s", s.Agent, s.Presence())
			}
		case <-time.After(wait):
			t.Fatal("PresenceChanged not called")
		}
		if av := e.hub.AvailableAgents(); !av["alice"] || len(av) != 1 {
			t.Fatalf("available %v", av)
		}
		if !e.hub.AgentOnline("alice") || e.hub.AgentOnline("bob") {
			t.Fatal("AgentOnline")
		}
	})
	for _, tc := range []struct {
		name     string
		frame    func() error
		code     string
		ref      string
		metaCode int
	}{
		{"binary frame", func() error { return c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}) }, agents.CodeBadMessage, "", 0},
		{"not JSON", func() error { return c.WriteMessage(websocket.TextMessage, []byte("hi")) }, agents.CodeBadMessage, "", 0},
		{"invalid message keeps ref", func() error {
			return c.WriteJSON(map[string]any{"type": "dtmf", "call_id": "wacid.1", "digits": "x", "ref": "d1"})
		}, agents.CodeBadMessage, "d1", 0},
		{"second hello", func() error {
			return c.WriteJSON(map[string]any{"type": "hello", "v": 1, "token": "t", "ref": "h"})
		}, agents.CodeOutOfTurn, "h", 0},
		{"coded handler error", func() error { return c.WriteJSON(map[string]any{"type": "dial", "to": "12", "ref": "x1"}) }, agents.CodeInvalidNumber, "x1", 0},
		{"plain handler error is internal", func() error {
			return c.WriteJSON(map[string]any{"type": "accept", "call_id": "wacid.1", "ref": "x2"})
		}, agents.CodeInternal, "x2", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.frame(); err != nil {
				t.Fatal(err)
			}
			var em agents.ErrorMsg
			readInto(t, c, &em)
			if em.Type != agents.TypeError || em.Code != tc.code || em.Ref != tc.ref {
				t.Fatalf("got %+v, want %s ref %q", em, tc.code, tc.ref)
			}
		})
	}
	t.Run("handled message", func(t *testing.T) {
		send(t, c, map[string]any{"type": "reject", "call_id": "wacid.1", "ref": "ok1"})
		if m := read(t, c); m["type"] != "handled" || m["ref"] != "ok1" {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("still open after errors", func(t *testing.T) {
		send(t, c, map[string]any{"type": "ping", "ref": "p2"})
		if m := read(t, c); m["type"] != "pong" || m["ref"] != "p2" {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("oversize frame closes with 1009", func(t *testing.T) {
		big := `{"type":"ping","pad":"` + strings.Repeat("x", agents.MaxMessageBytes) + `"}`
		_ = c.WriteMessage(websocket.TextMessage, []byte(big)) // may fail once the server closes
		if got := closeCode(t, c); got != websocket.CloseMessageTooBig {
			t.Fatalf("close code %d", got)
		}
		select {
		case s := <-e.h.closed:
			if s.Agent != "alice" {
				t.Fatalf("closed %s", s.Agent)
			}
		case <-time.After(wait):
			t.Fatal("Closed not called")
		}
		if n := len(e.hub.Sessions(nil)); n != 0 {
			t.Fatalf("%d sessions left", n)
		}
	})
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestHubSlowConsumerIsDropped: a session that never reads fills its queue
// and is closed; Broadcast never blocks and a healthy session gets every
// message.
func TestHubSlowConsumerIsDropped(t *testing.T) {
	e := startHub(t, agents.HubConfig{SendQueue: 4})
	slow, _ := e.login(t, "slow") // never read from again
	_ = slow
	fast, _ := e.login(t, "fast")
	got := make(chan int, 1)
	readErr := make(chan error, 1)
	go func() {
		for {
			var m struct {
				Type string `json:"type"`
				N    int    `json:"n"`
			}
			_ = fast.SetReadDeadline(time.Now().Add(wait))
			if err := fast.ReadJSON(&m); err != nil {
				readErr <- err
				return
			}
			if m.Type == "bulk" {
				got <- m.N
			}
		}
	}()
	pad := strings.Repeat("x", 256<<10)
	dropped := false
	for i := 0; i < 2000 && !dropped; i++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.hub.Broadcast(nil, map[string]any{"type": "bulk", "n": i, "pad": pad})
		}()
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatalf("Broadcast %d blocked", i)
		}
		select {
		case n := <-got:
			if n != i {
				t.Fatalf("fast client got %d, want %d", n, i)
			}
		case err := <-readErr:
			t.Fatalf("fast client: %v", err)
		case <-time.After(wait):
			t.Fatalf("fast client did not get message %d", i)
		}
		select {
		case s := <-e.h.closed:
			if s.Agent != "slow" {
				t.Fatalf("%s was dropped", s.Agent)
			}
			dropped = true
		default:
		}
	}
	if !dropped {
		t.Fatal("the slow consumer was never dropped")
	}

	ss := e.hub.Sessions(nil)
	if len(ss) != 1 || ss[0].Agent != "fast" {
		t.Fatalf("sessions left: %d", len(ss))
	}
	// Sends to a dropped session are no-ops, never a panic or a block.
	if e.hub.SendAgent("slow", map[string]string{"type": "x"}) {
		t.Fatal("SendAgent reached a dropped session")
	}
}

func TestHubCloseSendsGoingAwayAndLeaksNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	h := newTestHandler()
	hub, err := agents.NewHub(agents.HubConfig{TokenSecret: testSecret}, h, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	e := &hubEnv{hub: hub, h: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	var conns []*websocket.Conn
	for _, a := range []string{"a1", "a2", "a2"} {
		c, _ := e.login(t, a)
		conns = append(conns, c)
	}
	if n := len(hub.Sessions(nil)); n != 3 {
		t.Fatalf("%d sessions", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- hub.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	for i, c := range conns {
		if got := closeCode(t, c); got != websocket.CloseGoingAway {
			t.Fatalf("conn %d: close code %d, want 1001", i, got)
		}
		_ = c.Close()
	}
	for range 3 {
		select {
		case <-h.closed:
		case <-time.After(wait):
			t.Fatal("Closed not called for every session")
		}
	}
	if err := hub.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	// A closed hub refuses new sockets.
	if _, resp, err := websocket.DefaultDialer.Dial(e.url, nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("dial after Close: %v", err)
	}
	srv.Close()
	goleak.VerifyNone(t, ignore)
}

func TestNewHubRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  agents.HubConfig
		h    agents.Handler
	}{
		{"short secret", agents.HubConfig{TokenSecret: []byte("short")}, newTestHandler()},
		{"nil handler", agents.HubConfig{TokenSecret: testSecret}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if hub, err := agents.NewHub(tc.cfg, tc.h, nil, nil); err == nil || hub != nil {
				t.Fatalf("hub %v err %v", hub, err)
			}
		})
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestHubFloodingSessionGetsPolicyClose: a client that floods the server
// with requests and does not read the answers overflows its send queue; it
// is cut with a close frame 1008 (policy violation), not a TCP reset, and
// what it sent meanwhile is not acted on.
func TestHubFloodingSessionGetsPolicyClose(t *testing.T) {
	e := startHub(t, agents.HubConfig{SendQueue: 4})
	// A small receive buffer, so that unread answers back up quickly.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	c, _, err := d.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(t, c, map[string]any{"type": "hello", "v": 1, "token": token(t, "flood")})
	var w agents.Welcome
	readInto(t, c, &w)

	ref := strings.Repeat("r", 64)
	deadline := time.Now().Add(30 * time.Second)
	sent := 0
	for counter(t, e.reg, "callgw_agent_sessions_dropped_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no drop after %d pings", sent)
		}
		for range 500 {
			_ = c.SetWriteDeadline(time.Now().Add(wait))
			if err := c.WriteJSON(map[string]any{"type": "ping", "ref": ref}); err != nil {
				t.Fatalf("write after %d pings: %v", sent, err)
			}
			sent++
		}
	}
	// A command sent after the cut is not handled.
	send(t, c, map[string]any{"type": "presence", "status": "available", "ref": "late"})
	if got := closeCode(t, c); got != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", got)
	}
	select {
	case s := <-e.h.closed:
		if s.Agent != "flood" {
			t.Fatalf("%s closed", s.Agent)
		}
	case <-time.After(wait):
		t.Fatal("the flooding session was not closed")
	}
	select {
	case s := <-e.h.presence:
		t.Fatalf("presence of %s handled after the cut", s.Agent)
	default:
	}
	t.Logf("dropped after %d pings", sent)
}
