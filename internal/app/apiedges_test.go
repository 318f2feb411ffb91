package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

const edgeKey = "edge-admin-key-0123456789"

// apiRow is one (request, dependency state) -> (status, error code) case.
type apiRow struct {
	name         string
	method, path string
	body         string
	auth         string // Authorization header; "" = none
	status       int
	alt          int                                     // another acceptable status (a slow dependency may still answer in time)
	code         string                                  // error code ("" on success)
	check        func(t *testing.T, body map[string]any) // more checks on the JSON body
}

// leaks are fragments of internal error texts that must never reach a
// client.
var leaks = []string{"127.0.0.1", "tcp", "i/o timeout", "dial", "redis:", "EOF", "connection refused", "context deadline", "signaling:", "billing:", "permissions:"}

func (r apiRow) run(t *testing.T, base string) map[string]any {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	// A guard against a hang, not a speed check: with Redis slowed to 5 s a
	// command, a degraded read waits out the client's read timeout and
	// retry for each Redis command before Meta answers (~15 s idle; more
	// under -race on a loaded CI runner).
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != r.status && (r.alt == 0 || resp.StatusCode != r.alt) {
		t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, resp.StatusCode, r.status, b)
	}
	if resp.StatusCode == r.alt && resp.StatusCode != r.status {
		r.code, r.check = "", nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %s", r.method, r.path, b)
	}
	e, _ := m["error"].(map[string]any)
	switch {
	case r.code == "" && e != nil:
		t.Fatalf("unexpected error %s", b)
	case r.code != "" && (e == nil || e["code"] != r.code):
		t.Fatalf("%s %s: code %v, want %s: %s", r.method, r.path, e["code"], r.code, b)
	}
	if e != nil {
		msg, _ := e["message"].(string)
		if msg == "" {
			t.Fatalf("error without a message: %s", b)
		}
		for _, l := range leaks {
			if strings.Contains(msg, l) {
				t.Fatalf("message leaks %q: %s", l, msg)
			}
		}
	}
	if r.check != nil {
		r.check(t, m)
	}
	return m
}

func runRows(t *testing.T, base string, rows []apiRow) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { r.run(t, base) })
	}
}

// TestAPIErrorTable: every REST endpoint, with Redis up, slow and down and
// the Graph API failing each way, answers the documented status and error
// code; never 500 for a client mistake or a dependency outage, and never
// an internal error text.
func TestAPIErrorTable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := startFaultEnv(t, nil, "-api-keys", edgeKey+":admin")
	base := env.URL
	admin := "Bearer " + edgeKey
	agentTok, err := env.AgentToken("alice", agents.RoleAgent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agentAuth := "Bearer " + agentTok

	const (
		granted  = "+447700900601" // has permission (asked below, accepted)
		stranger = "+447700900602" // never asked
		fresh    = "+447700900603" // asked while Graph fails
		bsuid    = "US.13491208655302741918"
	)
	env.sim.SetUser(granted, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg")})
	env.sim.SetUser(stranger, metasim.UserBehavior{Permission: metasim.PermissionIgnore})
	for _, u := range []string{granted, stranger, fresh} {
		userWrites(t, ctx, env.sim, u)
	}

	t.Run("redis up, graph ok", func(t *testing.T) {
		long := strings.Repeat("x", 1025)
		runRows(t, base, []apiRow{
			{name: "config without auth", method: "GET", path: "/api/v1/config", status: 200},
			{name: "no auth", method: "GET", path: "/api/v1/calls", status: 401, code: "unauthenticated"},
			{name: "unknown key", method: "GET", path: "/api/v1/calls", auth: "Bearer nope", status: 401, code: "unauthenticated"},
			{name: "basic scheme", method: "GET", path: "/api/v1/calls", auth: "Basic " + edgeKey, status: 401, code: "unauthenticated"},
			{name: "bearer lower-case", method: "GET", path: "/api/v1/calls", auth: "bearer " + edgeKey, status: 200},
			{name: "BEARER upper-case, two spaces", method: "GET", path: "/api/v1/calls", auth: "BEARER  " + edgeKey, status: 200},
			{name: "agent may not see usage", method: "GET", path: "/api/v1/usage", auth: agentAuth, status: 403, code: "forbidden"},
			{name: "agent may not see live", method: "GET", path: "/api/v1/live", auth: agentAuth, status: 403, code: "forbidden"},
			{name: "unknown endpoint", method: "GET", path: "/api/v1/nope", auth: admin, status: 404, code: "not_found"},

			{name: "calls", method: "GET", path: "/api/v1/calls", auth: admin, status: 200},
			{name: "calls as agent", method: "GET", path: "/api/v1/calls", auth: agentAuth, status: 200},
			{name: "calls cursor garbage", method: "GET", path: "/api/v1/calls?cursor=garbage", auth: admin, status: 400, code: "bad_request"},
			{name: "calls cursor -1", method: "GET", path: "/api/v1/calls?cursor=-1", auth: admin, status: 400, code: "bad_request"},
			{name: "calls cursor 0", method: "GET", path: "/api/v1/calls?cursor=0", auth: admin, status: 400, code: "bad_request"},
			{name: "calls cursor overlong", method: "GET", path: "/api/v1/calls?cursor=123456789012345678901234567890", auth: admin, status: 400, code: "bad_request"},
			{name: "calls cursor ok", method: "GET", path: "/api/v1/calls?cursor=12", auth: admin, status: 200},
			{name: "calls number abc", method: "GET", path: "/api/v1/calls?number=abc", auth: admin, status: 400, code: "bad_request"},
			{name: "calls number ok", method: "GET", path: "/api/v1/calls?number=%2B447700900601", auth: admin, status: 200},
			{name: "calls limit 0", method: "GET", path: "/api/v1/calls?limit=0", auth: admin, status: 400, code: "bad_request"},
			{name: "calls limit 1001", method: "GET", path: "/api/v1/calls?limit=1001", auth: admin, status: 400, code: "bad_request"},
			{name: "calls limit huge", method: "GET", path: "/api/v1/calls?limit=99999999999999999999", auth: admin, status: 400, code: "bad_request"},
			{name: "calls direction", method: "GET", path: "/api/v1/calls?direction=sideways", auth: admin, status: 400, code: "bad_request"},
			{name: "calls outcome", method: "GET", path: "/api/v1/calls?outcome=great", auth: admin, status: 400, code: "bad_request"},
			{name: "calls from", method: "GET", path: "/api/v1/calls?from=yesterday", auth: admin, status: 400, code: "bad_request"},
			{name: "calls from after to", method: "GET", path: "/api/v1/calls?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", auth: admin, status: 400, code: "bad_request"},
			{name: "calls agent with space", method: "GET", path: "/api/v1/calls?agent=a%20b", auth: admin, status: 400, code: "bad_request"},
			{name: "calls format xml", method: "GET", path: "/api/v1/calls?format=xml", auth: admin, status: 400, code: "bad_request"},
			{name: "calls csv", method: "GET", path: "/api/v1/calls?format=csv", auth: admin, status: 200},

			{name: "usage", method: "GET", path: "/api/v1/usage", auth: admin, status: 200},
			{name: "usage month 13", method: "GET", path: "/api/v1/usage?month=2026-13", auth: admin, status: 400, code: "bad_request"},
			{name: "usage month short", method: "GET", path: "/api/v1/usage?month=2026-1", auth: admin, status: 400, code: "bad_request"},
			{name: "usage month abc", method: "GET", path: "/api/v1/usage?month=abc", auth: admin, status: 400, code: "bad_request"},
			{name: "usage format xml", method: "GET", path: "/api/v1/usage?format=xml", auth: admin, status: 400, code: "bad_request"},
			{name: "usage csv", method: "GET", path: "/api/v1/usage?month=2026-11&format=csv", auth: admin, status: 200},

			{name: "live", method: "GET", path: "/api/v1/live", auth: admin, status: 200},

			{name: "permission state", method: "GET", path: "/api/v1/permissions/447700900602", auth: admin, status: 200},
			{name: "permission state BSUID", method: "GET", path: "/api/v1/permissions/" + bsuid, auth: admin, status: 200},
			{name: "permission state abc", method: "GET", path: "/api/v1/permissions/abc", auth: admin, status: 400, code: "invalid_number"},
			{name: "permission state overlong", method: "GET", path: "/api/v1/permissions/" + strings.Repeat("1", 300), auth: admin, status: 400, code: "invalid_number"},

			{name: "request not JSON", method: "POST", path: "/api/v1/permission-requests", body: "nope", auth: admin, status: 400, code: "bad_request"},
			{name: "request empty body", method: "POST", path: "/api/v1/permission-requests", auth: admin, status: 400, code: "bad_request"},
			{name: "request two objects", method: "POST", path: "/api/v1/permission-requests", body: `{"to":"` + stranger + `"}{}`, auth: admin, status: 400, code: "bad_request"},
			{name: "request over 16 KiB", method: "POST", path: "/api/v1/permission-requests", body: `{"to":"` + stranger + `","text":"` + strings.Repeat("x", 17<<10) + `"}`, auth: admin, status: 400, code: "bad_request"},
			{name: "request no to", method: "POST", path: "/api/v1/permission-requests", body: `{}`, auth: admin, status: 400, code: "invalid_number"},
			{name: "request to not a number", method: "POST", path: "/api/v1/permission-requests", body: `{"to":"not a number"}`, auth: admin, status: 400, code: "invalid_number"},
			{name: "request text too long", method: "POST", path: "/api/v1/permission-requests", body: `{"to":"` + stranger + `","text":"` + long + `"}`, auth: admin, status: 400, code: "bad_request"},

			{name: "call not JSON", method: "POST", path: "/api/v1/calls", body: "[", auth: admin, status: 400, code: "bad_request"},
			{name: "call to not a number", method: "POST", path: "/api/v1/calls", body: `{"to":"not a number"}`, auth: admin, status: 400, code: "invalid_number"},
			{name: "call agent with space", method: "POST", path: "/api/v1/calls", body: `{"to":"` + stranger + `","agent":"a b"}`, auth: admin, status: 400, code: "bad_request"},
			{name: "agent calls for another", method: "POST", path: "/api/v1/calls", body: `{"to":"` + stranger + `","agent":"bob"}`, auth: agentAuth, status: 403, code: "forbidden"},
			{name: "call no agent available", method: "POST", path: "/api/v1/calls", body: `{"to":"` + stranger + `"}`, auth: admin, status: 409, code: "no_agent"},
			{name: "call without permission", method: "POST", path: "/api/v1/calls", body: `{"to":"` + stranger + `","agent":"alice"}`, auth: admin, status: 409, code: "no_permission"},
			{name: "call button to not a number", method: "POST", path: "/api/v1/call-buttons", body: `{"to":"not a number","text":"call us"}`, auth: admin, status: 400, code: "invalid_number"},
			{name: "call button without text", method: "POST", path: "/api/v1/call-buttons", body: `{"to":"` + stranger + `"}`, auth: admin, status: 400, code: "bad_request"},
			{name: "call button not JSON", method: "POST", path: "/api/v1/call-buttons", body: `{`, auth: admin, status: 400, code: "bad_request"},
			{name: "settings of abc", method: "GET", path: "/api/v1/numbers/abc/settings", auth: admin, status: 400, code: "bad_request"},
			{name: "settings of a foreign number", method: "GET", path: "/api/v1/numbers/999/settings", auth: admin, status: 404, code: "unknown_number"},
			{name: "unclean path", method: "GET", path: "/api/v1/permissions/.", auth: admin, status: 404, code: "not_found"},
			{name: "call a BSUID without permission", method: "POST", path: "/api/v1/calls", body: `{"to":"` + bsuid + `","agent":"alice"}`, auth: admin, status: 409, code: "no_permission"},
		})
	})

	// The granted user accepts a permission request (Redis and Graph up).
	runRows(t, base, []apiRow{{name: "grant request", method: "POST", path: "/api/v1/permission-requests",
		body: `{"to":"` + granted + `"}`, auth: admin, status: 202}})
	waitFor(t, ctx, "the grant", func() bool {
		m := apiRow{method: "GET", path: "/api/v1/permissions/" + strings.TrimPrefix(granted, "+"), auth: admin, status: 200}.run(t, base)
		return m["status"] == "temporary"
	})
	state := func(number string) map[string]any {
		return apiRow{method: "GET", path: "/api/v1/permissions/" + strings.TrimPrefix(number, "+"), auth: admin, status: 200}.run(t, base)
	}

	for _, g := range []struct {
		mode     graphMode
		metaCode int
		// statuses of a permission request and of a call to a granted user
		reqStatus, callStatus int
	}{
		{graph5xx, 0, 502, 502},
		{graphTimeout, 0, 502, 502},
		{graphHTML, 0, 502, 502},
		{graphMetaError, 131000, 502, 502}, // a Meta error that is nobody's rule: 502
		{graphMetaError, 138006, 409, 409}, // no permission at Meta: refused by a rule (409)
	} {
		t.Run("graph "+g.mode.String()+" "+itoa(int64(g.metaCode)), func(t *testing.T) {
			before := state(fresh)
			env.graph.set(g.mode, false, g.metaCode)
			defer env.graph.set(graphOK, false, 0)
			failedBefore := env.graph.failed.Load()
			runRows(t, base, []apiRow{
				{name: "request", method: "POST", path: "/api/v1/permission-requests", body: `{"to":"` + fresh + `"}`, auth: admin,
					status: g.reqStatus, code: "meta_error", check: func(t *testing.T, m map[string]any) {
						// The body shows the state after the local count was undone.
						p, _ := m["permission"].(map[string]any)
						if p == nil || p["requests_left_24h"] != before["requests_left_24h"] || p["requests_left_7d"] != before["requests_left_7d"] {
							t.Fatalf("permission in the body %v, state before %v", p, before)
						}
						if e := m["error"].(map[string]any); g.metaCode != 0 && e["meta_code"] != float64(g.metaCode) {
							t.Fatalf("meta_code %v, want %d", e["meta_code"], g.metaCode)
						}
					}},
				{name: "call", method: "POST", path: "/api/v1/calls", body: `{"to":"` + granted + `","agent":"alice"}`, auth: admin,
					status: g.callStatus, code: "meta_error"},
				{name: "state", method: "GET", path: "/api/v1/permissions/" + strings.TrimPrefix(granted, "+"), auth: admin, status: 200},
				{name: "calls", method: "GET", path: "/api/v1/calls", auth: admin, status: 200},
				{name: "call button", method: "POST", path: "/api/v1/call-buttons", body: `{"to":"` + granted + `","text":"call us"}`, auth: admin,
					status: g.callStatus, code: "meta_error"},
			})
			if env.graph.failed.Load() == failedBefore {
				t.Fatal("the Graph API never failed: the rows tested nothing")
			}
			if after := state(fresh); after["requests_left_24h"] != before["requests_left_24h"] {
				t.Fatalf("a request that failed at Meta was counted: %v -> %v", before["requests_left_24h"], after["requests_left_24h"])
			}
		})
	}

	// Redis slow (answers after 5 s: go-redis gives up after 3 s) and down.
	outage := func(t *testing.T, slow bool) {
		t.Helper()
		alt, alt202 := 0, 0
		if slow {
			// A slow Redis may still answer in time (go-redis' timeouts
			// are per read, the proxy delays per chunk): success is fine,
			// any failure must be 503.
			alt, alt202 = 200, 202
		}
		rows := []apiRow{
			{name: "calls", method: "GET", path: "/api/v1/calls", auth: admin, status: 503, alt: alt, code: "unavailable"},
			{name: "calls csv", method: "GET", path: "/api/v1/calls?format=csv", auth: admin, status: 503, alt: alt, code: "unavailable"},
			{name: "calls still judges its parameters", method: "GET", path: "/api/v1/calls?cursor=garbage", auth: admin, status: 400, code: "bad_request"},
			{name: "usage", method: "GET", path: "/api/v1/usage", auth: admin, status: 503, alt: alt, code: "unavailable"},
			{name: "usage csv", method: "GET", path: "/api/v1/usage?format=csv", auth: admin, status: 503, alt: alt, code: "unavailable"},
			{name: "request", method: "POST", path: "/api/v1/permission-requests", body: `{"to":"` + stranger + `"}`, auth: admin, status: 503, alt: alt202, code: "unavailable"},
			{name: "request to not a number", method: "POST", path: "/api/v1/permission-requests", body: `{"to":"not a number"}`, auth: admin, status: 400, code: "invalid_number"},
			{name: "state from Meta", method: "GET", path: "/api/v1/permissions/" + strings.TrimPrefix(granted, "+"), auth: admin, status: 200,
				check: func(t *testing.T, m map[string]any) {
					if !slow && m["degraded"] != true {
						t.Fatalf("not degraded: %v", m)
					}
				}},
			{name: "live", method: "GET", path: "/api/v1/live", auth: admin, status: 200},
			{name: "config", method: "GET", path: "/api/v1/config", status: 200},
			{name: "call button", method: "POST", path: "/api/v1/call-buttons", body: `{"to":"` + granted + `","text":"call us"}`, auth: admin, status: 503, alt: alt202, code: "unavailable"},
			{name: "settings", method: "GET", path: "/api/v1/numbers/" + faultPNID + "/settings", auth: admin, status: 503, alt: alt, code: "unavailable"},
		}
		if !slow { // a dial makes many Redis round trips: slow Redis makes it slower than the client's patience
			rows = append(rows, apiRow{name: "call without permission at Meta", method: "POST", path: "/api/v1/calls",
				body: `{"to":"` + stranger + `","agent":"alice"}`, auth: admin, status: 409, code: "no_permission"})
		}
		runRows(t, base, rows)
		t.Run("and the Graph API down", func(t *testing.T) {
			env.graph.set(graph5xx, true, 0)
			defer env.graph.set(graphOK, false, 0)
			runRows(t, base, []apiRow{
				{name: "state", method: "GET", path: "/api/v1/permissions/" + strings.TrimPrefix(stranger, "+"), auth: admin, status: 503, code: "unavailable"},
			})
		})
	}
	t.Run("redis slow", func(t *testing.T) {
		env.proxy.setDelay(5 * time.Second)
		defer env.proxy.setDelay(0)
		outage(t, true)
	})
	t.Run("redis down", func(t *testing.T) {
		env.rs.Stop()
		outage(t, false)
		env.rs.Restart()
		waitReady(t, ctx, base)
	})
	t.Run("redis back", func(t *testing.T) {
		runRows(t, base, []apiRow{
			{name: "calls", method: "GET", path: "/api/v1/calls", auth: admin, status: 200},
			{name: "usage", method: "GET", path: "/api/v1/usage", auth: admin, status: 200},
		})
	})
}

// TestAPIPicksAnAgentOnAnotherInstance: POST /api/v1/calls without an agent
// on instance B places the call with an agent available on instance A (the
// hub of B has no session at all).
func TestAPIPicksAnAgentOnAnotherInstance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := startFaultEnv(t, nil, "-api-keys", edgeKey+":admin")
	b := a.another(t, "edge-b")
	admin := "Bearer " + edgeKey
	const user = "+447700900611"
	a.sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg")})
	userWrites(t, ctx, a.sim, user)
	apiRow{method: "POST", path: "/api/v1/permission-requests", body: `{"to":"` + user + `"}`, auth: admin, status: 202}.run(t, a.URL)
	waitFor(t, ctx, "the grant", func() bool {
		m := apiRow{method: "GET", path: "/api/v1/permissions/" + strings.TrimPrefix(user, "+"), auth: admin, status: 200}.run(t, b.URL)
		return m["status"] == "temporary"
	})

	// No agent anywhere yet: 409 no_agent on B.
	apiRow{name: "no agent", method: "POST", path: "/api/v1/calls", body: `{"to":"` + user + `"}`, auth: admin, status: 409, code: "no_agent"}.run(t, b.URL)

	ag := a.agent(t, ctx, "alice") // on A
	waitFor(t, ctx, "B to see alice available", func() bool { return b.Ctrl.AvailableAgents()["alice"] })
	if n := len(b.Hub.Sessions(nil)); n != 0 {
		t.Fatalf("B has %d local sessions: the test would not show anything", n)
	}
	m := apiRow{name: "call", method: "POST", path: "/api/v1/calls", body: `{"to":"` + user + `"}`, auth: admin, status: 201}.run(t, b.URL)
	if m["agent"] != "alice" {
		t.Fatalf("placed with agent %v", m["agent"])
	}
	id, _ := m["id"].(string)
	if _, err := ag.Wait(ctx, func(msg agentclient.Msg) bool { return msg.Call != nil && msg.Call.ID == id }); err != nil {
		t.Fatalf("alice on A never heard of the call B placed: %v", err)
	}
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", id); err != nil {
		t.Fatal(err)
	}
}
