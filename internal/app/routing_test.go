package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

// Two business numbers (A: Acme, B: Beta) and three teams, served by two
// callgw instances on one Redis behind a round-robin load balancer.
const (
	rtSecret      = "route-app-secret"
	rtAccessToken = "route-access-token"
	rtTokenSecret = "route-token-secret-0123456789"
	rtNumA        = "100000000000001"
	rtNumB        = "100000000000002"
	rtNumC        = "100000000000003" // at the simulator; served only once a reload adds it
	rtAdminKey    = "route-admin-key-0123456789"
)

// rtConfig: sales (A's own team, round robin, queue with max_wait 3 s,
// overflow to support), support (ring_all, A's second team), beta (B's only
// team, no queue).
const rtConfig = `version: 1
agents: [ann, bob, cid, dan, eve]
teams:
  - id: sales
    name: Sales
    agents: [ann, bob, cid]
    strategy: round_robin
    ring_seconds: 6
    max_wait: %s
    max_size: 5
    overflow: support
  - id: support
    name: Support
    agents: [dan]
    strategy: ring_all
    max_wait: 2m
    max_size: 5
  - id: beta
    name: Beta desk
    agents: [eve]
    strategy: ring_all
    max_size: 0
numbers:
  - phone_number_id: "` + rtNumA + `"
    brand: Acme
    token_env: CALLGW_ACCESS_TOKEN
    teams: [sales, support]
    hold_audio: %s
  - phone_number_id: "` + rtNumB + `"
    brand: Beta
    token_env: CALLGW_ACCESS_TOKEN
    teams: [beta]
`

type routeEnv struct {
	sim     *metasim.Sim
	a, b    *testApp
	cfgPath string
	rs      *redistest.Server
}

func writeRouteConfig(t *testing.T, path, maxWait string) {
	t.Helper()
	hold, err := filepath.Abs("testdata/hold-660.ogg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(fmt.Sprintf(rtConfig, maxWait, hold)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startRouteEnv starts the simulator (two numbers), a load balancer and two
// instances (route-a, route-b) reading one configuration file.
func startRouteEnv(t *testing.T, maxWait string) *routeEnv {
	t.Helper()
	rs := redistest.Start(t)
	var backends atomic.Pointer[[]*url.URL]
	var rr atomic.Uint64
	lb := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			bs := *backends.Load()
			r.SetURL(bs[int(rr.Add(1))%len(bs)])
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) },
	})
	t.Cleanup(lb.Close)
	sim, err := metasim.New(metasim.Config{AppSecret: rtSecret, AccessToken: rtAccessToken, PhoneNumberID: rtNumA,
		WebhookURL: lb.URL + "/webhooks/whatsapp", LoopbackOnly: true, WebhookRetries: 6, CallbackPermission: true,
		Registerer: prometheus.NewRegistry(), AssumeWindowOpen: true,
		Numbers: []metasim.Number{{PhoneNumberID: rtNumB, DisplayPhoneNumber: "15550002002"},
			{PhoneNumberID: rtNumC, DisplayPhoneNumber: "15550002003"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	graph := httptest.NewServer(sim.GraphHandler())
	t.Cleanup(graph.Close)
	cfgPath := filepath.Join(t.TempDir(), "callgw.yaml")
	writeRouteConfig(t, cfgPath, maxWait)
	args := func(id string) []string {
		return []string{"-addr", "127.0.0.1:0", "-redis-url", rs.URL(), "-graph-url", graph.URL,
			"-access-token", rtAccessToken, "-app-secret", rtSecret, "-verify-token", "v",
			"-phone-number-id", rtNumA, "-token-secret", rtTokenSecret, "-media-loopback",
			"-ring-timeout", "20s", "-agent-grace", "5s", "-drain-timeout", "2s", "-mask-numbers=false",
			"-config", cfgPath, "-instance-id", id, "-api-keys", rtAdminKey + ":admin"}
	}
	e := &routeEnv{sim: sim, rs: rs, cfgPath: cfgPath}
	e.a = startWith(t, args("route-a"), rs, nil)
	e.b = startWith(t, args("route-b"), rs, nil)
	var us []*url.URL
	for _, ta := range []*testApp{e.a, e.b} {
		u, _ := url.Parse(ta.URL)
		us = append(us, u)
	}
	backends.Store(&us)
	return e
}

// agentOn signs agent in on an instance (available when avail).
func (e *routeEnv) agentOn(t *testing.T, ctx context.Context, ta *testApp, id string, avail bool) *agentclient.Client {
	t.Helper()
	tok, err := ta.AgentToken(id, agents.RoleAgent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Dial(ctx, "ws"+strings.TrimPrefix(ta.URL, "http")+"/ws/agent", tok,
		agentclient.Options{Audio: packets(t, "agent-1000.ogg"), LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if avail {
		if err := c.Available(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// waitSeen waits until both instances see every agent in want available.
func (e *routeEnv) waitSeen(t *testing.T, ctx context.Context, want ...string) {
	t.Helper()
	waitFor(t, ctx, "agents seen everywhere", func() bool {
		for _, ta := range []*testApp{e.a, e.b} {
			av := ta.Ctrl.AvailableAgents()
			for _, a := range want {
				if !av[a] {
					return false
				}
			}
		}
		return true
	})
}

func (e *routeEnv) place(t *testing.T, ctx context.Context, from, to string) *metasim.UserCall {
	t.Helper()
	uc, err := e.sim.PlaceCall(ctx, metasim.CallOptions{From: from, Name: "Caller", To: to, Audio: oggBytes(t, "caller-440.ogg")})
	if err != nil {
		t.Fatal(err)
	}
	return uc
}

// offerDeadlines reads when a call_offered's offer and ring end.
func offerDeadlines(t *testing.T, m agentclient.Msg) (offer, ring time.Time) {
	t.Helper()
	var v struct {
		Call struct {
			Offer time.Time `json:"offer_expires_at"`
			Ring  time.Time `json:"ring_expires_at"`
		} `json:"call"`
	}
	if err := json.Unmarshal(m.Raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.Call.Offer, v.Call.Ring
}

// offeredCall reads the call of a call_offered (with the fields of teams).
func offeredCall(t *testing.T, m agentclient.Msg) (brand, number, team string) {
	t.Helper()
	var v struct {
		Call struct {
			Brand         string `json:"brand"`
			PhoneNumberID string `json:"phone_number_id"`
			Team          string `json:"team"`
		} `json:"call"`
	}
	if err := json.Unmarshal(m.Raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.Call.Brand, v.Call.PhoneNumberID, v.Call.Team
}

func offeredTo(c *agentclient.Client, id string) bool {
	return c.Has(func(m agentclient.Msg) bool { return m.Type == "call_offered" && m.Call != nil && m.Call.ID == id })
}

// takeCall accepts a call offered to ag and waits until audio flows.
func takeCall(t *testing.T, ctx context.Context, ag *agentclient.Client, uc *metasim.UserCall) {
	t.Helper()
	if err := ag.Accept(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := ag.WaitConnected(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := uc.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatal(err)
	}
}

func hangup(t *testing.T, ctx context.Context, ag *agentclient.Client, id string) {
	t.Helper()
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", id); err != nil {
		t.Fatal(err)
	}
}

// TestRoutingByNumberAndRoundRobin: a call to number B rings only B's team,
// with B's brand; six calls to A spread 2-2-2 over A's round-robin team
// whose agents sit on two instances, the calls owned by both.
func TestRoutingByNumberAndRoundRobin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	e := startRouteEnv(t, "2m")
	ann := e.agentOn(t, ctx, e.a, "ann", true)
	bob := e.agentOn(t, ctx, e.b, "bob", true)
	cid := e.agentOn(t, ctx, e.a, "cid", true)
	dan := e.agentOn(t, ctx, e.b, "dan", true)
	eve := e.agentOn(t, ctx, e.b, "eve", true)
	e.waitSeen(t, ctx, "ann", "bob", "cid", "dan", "eve")

	// A call to B rings eve only, with B's brand.
	ub := e.place(t, ctx, "+447700900701", rtNumB)
	m, err := eve.WaitType(ctx, "call_offered", ub.ID())
	if err != nil {
		t.Fatal(err)
	}
	if brand, num, team := offeredCall(t, m); brand != "Beta" || num != rtNumB || team != "beta" {
		t.Fatalf("offered with brand %q number %q team %q", brand, num, team)
	}
	if offer, _ := offerDeadlines(t, m); !offer.IsZero() {
		t.Fatalf("a ring_all offer carries a per-agent deadline %v", offer)
	}
	takeCall(t, ctx, eve, ub)
	for _, o := range []*agentclient.Client{ann, bob, cid, dan} {
		if offeredTo(o, ub.ID()) {
			t.Fatal("a call to number B was offered outside B's team")
		}
	}
	hangup(t, ctx, eve, ub.ID())

	// Six calls to A: round robin over ann, bob, cid (on two instances).
	sales := map[string]*agentclient.Client{"ann": ann, "bob": bob, "cid": cid}
	got := map[string]int{}
	owners := map[string]bool{}
	rdb := e.rs.Client()
	for i := range 6 {
		uc := e.place(t, ctx, fmt.Sprintf("+4477009008%02d", i), rtNumA)
		var who string
		waitFor(t, ctx, "the call offered to one sales agent", func() bool {
			for name, c := range sales {
				if offeredTo(c, uc.ID()) {
					who = name
					return true
				}
			}
			return false
		})
		m, err := sales[who].WaitType(ctx, "call_offered", uc.ID())
		if err != nil {
			t.Fatal(err)
		}
		if brand, _, team := offeredCall(t, m); brand != "Acme" || team != "sales" {
			t.Fatalf("call %d offered with brand %q team %q", i, brand, team)
		}
		// round_robin: the offer ends with the agent's ring time (6 s), well
		// before the call's ring (20 s): the ringing card counts that down.
		if offer, ring := offerDeadlines(t, m); offer.IsZero() || !offer.Before(ring) || time.Until(offer) > 6*time.Second || time.Until(offer) < 3*time.Second {
			t.Fatalf("call %d: offer until %v (in %v), ring until %v", i, offer, time.Until(offer), ring)
		}
		owners[rdb.Get(ctx, "callgw:call:{"+uc.ID()+"}:owner").Val()] = true
		takeCall(t, ctx, sales[who], uc)
		for name, c := range sales {
			if name != who && offeredTo(c, uc.ID()) {
				t.Fatalf("round robin offered call %d to %s and %s", i, who, name)
			}
		}
		if offeredTo(dan, uc.ID()) {
			t.Fatal("support rang while sales had free agents")
		}
		got[who]++
		hangup(t, ctx, sales[who], uc.ID())
	}
	if got["ann"] != 2 || got["bob"] != 2 || got["cid"] != 2 {
		t.Fatalf("round robin spread %v, want 2-2-2", got)
	}
	if len(owners) != 2 {
		t.Fatalf("calls owned by %v: want both instances", owners)
	}
}

// TestQueueHoldAudioOverflowAndCallbacks: with every sales agent busy a
// caller waits in the queue, hears the number's hold audio, and is
// connected to the first agent who frees up; max_wait overflows to support;
// a missed call becomes a callback task that closes when an agent calls
// back.
func TestQueueHoldAudioOverflowAndCallbacks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	e := startRouteEnv(t, "4s")
	ann := e.agentOn(t, ctx, e.a, "ann", true)
	bob := e.agentOn(t, ctx, e.b, "bob", true)
	cid := e.agentOn(t, ctx, e.a, "cid", true)
	dan := e.agentOn(t, ctx, e.b, "dan", false) // support: away for now
	eve := e.agentOn(t, ctx, e.a, "eve", false) // beta: away
	e.waitSeen(t, ctx, "ann", "bob", "cid")

	// Every sales agent busy.
	sales := map[string]*agentclient.Client{"ann": ann, "bob": bob, "cid": cid}
	busy := map[string]*metasim.UserCall{}
	for i := range 3 {
		uc := e.place(t, ctx, fmt.Sprintf("+4477009009%02d", i), rtNumA)
		var who string
		waitFor(t, ctx, "offer", func() bool {
			for name, c := range sales {
				if offeredTo(c, uc.ID()) && busy[name] == nil {
					who = name
					return true
				}
			}
			return false
		})
		takeCall(t, ctx, sales[who], uc)
		busy[who] = uc
	}

	// A fourth caller waits: answered by callgw, hears the hold audio (660 Hz).
	q := e.place(t, ctx, "+447700900950", rtNumA)
	if err := q.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatalf("the waiting caller was not answered by callgw: %v", err)
	}
	if n := q.RTPBeforeAccept(); n != 0 {
		t.Fatalf("%d RTP packets before accept", n)
	}
	waitFor(t, ctx, "hold audio", func() bool { return q.ReceivedCount() > 60 })
	checkTone(t, "waiting caller", q.Received(), 660)
	var queued []map[string]any
	waitFor(t, ctx, "the queue on the supervisor view", func() bool {
		queued = supervisorQueues(t, e.b)
		return len(queued) == 1
	})
	if queued[0]["call_id"] != q.ID() || queued[0]["team"] != "sales" || queued[0]["position"] != float64(1) || queued[0]["brand"] != "Acme" {
		t.Fatalf("queue %+v", queued)
	}

	// bob frees up: the waiting caller is offered to him, and connected.
	hangup(t, ctx, bob, busy["bob"].ID())
	if _, err := bob.WaitType(ctx, "call_offered", q.ID()); err != nil {
		t.Fatal(err)
	}
	takeCall(t, ctx, bob, q)
	waitFor(t, ctx, "the agent's audio at the caller", func() bool {
		pcm := q.Received()
		if len(pcm) < 50 {
			return false
		}
		return toneIs(pcm, 1000)
	})
	if accepts := countAccepts(e.sim, q.ID()); accepts != 1 {
		t.Fatalf("%d accepts for the waiting call, want 1 (callgw's own)", accepts)
	}

	// Everyone in sales busy again: the next caller waits 4 s (max_wait),
	// then overflows to support, where dan (now available) takes it.
	ov := e.place(t, ctx, "+447700900951", rtNumA)
	if err := ov.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatal(err)
	}
	if err := dan.Available(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := dan.WaitType(ctx, "call_offered", ov.ID()); err != nil {
		t.Fatalf("no overflow to support: %v", err)
	}
	takeCall(t, ctx, dan, ov)

	// A missed call to B (eve away, beta has no queue) → a callback task
	// for beta; eve claims it and calls back; the task closes.
	const caller = "+447700900960"
	e.sim.SetUser(caller, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), AnswerAfter: 300 * time.Millisecond})
	mb := e.place(t, ctx, caller, rtNumB)
	if err := mb.WaitState(ctx, metasim.Ended); err != nil {
		t.Fatal(err)
	}
	entry := waitEntryOn(t, ctx, e.a, mb.ID())
	if entry.Outcome != call.Missed {
		t.Fatalf("call to B: %v/%v", entry.Outcome, entry.EndReason)
	}
	evTok, _ := e.a.AgentToken("eve", agents.RoleAgent, time.Hour)
	var task map[string]any
	waitFor(t, ctx, "the callback task", func() bool {
		ts := rtGet(t, e.b.URL+"/api/v1/callbacks?team=beta", evTok)["callbacks"].([]any)
		if len(ts) == 1 {
			task = ts[0].(map[string]any)
		}
		return task != nil
	})
	if task["state"] != "open" || task["first_call"] != mb.ID() || task["call_back"] != caller {
		t.Fatalf("task %+v", task)
	}
	if p, _ := task["permission"].(map[string]any); p == nil || p["can_call"] != true {
		t.Fatalf("task without the permission to call back from B: %+v", task)
	}
	// ann is not in beta: she may not claim it.
	annTok, _ := e.a.AgentToken("ann", agents.RoleAgent, time.Hour)
	if st := postStatus(t, e.a.URL+"/api/v1/callbacks/"+task["id"].(string)+"/claim", annTok); st != http.StatusForbidden {
		t.Fatalf("claim by a non-member: %d", st)
	}
	taskURL := e.a.URL + "/api/v1/callbacks/" + task["id"].(string)
	for _, step := range []struct {
		op, tok string
		want    int
	}{
		{"claim", evTok, http.StatusOK},
		{"unclaim", annTok, http.StatusConflict}, // not hers
		{"unclaim", evTok, http.StatusOK},
		{"claim", evTok, http.StatusOK},
		{"claim", annTok, http.StatusForbidden},
	} {
		if st := postStatus(t, taskURL+"/"+step.op, step.tok); st != step.want {
			t.Fatalf("%s: %d, want %d", step.op, st, step.want)
		}
	}
	if st := postStatus(t, e.a.URL+"/api/v1/callbacks/cb-nope/claim", evTok); st != http.StatusNotFound {
		t.Fatalf("claim of an unknown task: %d", st)
	}
	// Permission is per number: the missed call to B allows a call back from B.
	for _, q := range []struct {
		from string
		can  bool
	}{{rtNumB, true}, {"", false}} {
		ref := "pq" + q.from
		if err := eve.Send(map[string]any{"type": "permission_query", "to": caller, "from": q.from, "ref": ref}); err != nil {
			t.Fatal(err)
		}
		pm, err := eve.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == ref })
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Permission struct {
				CanCall bool `json:"can_call"`
			} `json:"permission"`
		}
		if err := json.Unmarshal(pm.Raw, &v); err != nil || pm.Type != "permission" || v.Permission.CanCall != q.can {
			t.Fatalf("permission from %q: %s", q.from, pm.Raw)
		}
	}
	if err := eve.Send(map[string]any{"type": "dial", "to": caller, "from": rtNumB, "ref": "cb"}); err != nil {
		t.Fatal(err)
	}
	dm, err := eve.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "cb" })
	if err != nil || m0(dm) == "" {
		t.Fatalf("dial back: %v %+v", err, dm)
	}
	if err := eve.AnswerOffer(ctx, dm.Call.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the task closed", func() bool {
		ts := rtGet(t, e.a.URL+"/api/v1/callbacks?team=beta&state=closed", evTok)["callbacks"].([]any)
		return len(ts) == 1 && ts[0].(map[string]any)["closed_by"] == dm.Call.ID
	})
}

func toneIs(pkts [][]byte, want float64) bool {
	if len(pkts) > 25 {
		pkts = pkts[len(pkts)-25:]
	}
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		return false
	}
	ok, _ := audiotest.HasTone(pcm, want, 20)
	return ok
}

func countAccepts(sim *metasim.Sim, id string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Action == "accept" && r.CallID == id {
			n++
		}
	}
	return n
}

func waitEntryOn(t *testing.T, ctx context.Context, ta *testApp, id string) billing.Entry {
	t.Helper()
	var e billing.Entry
	waitFor(t, ctx, "ledger entry", func() bool {
		var err error
		e, err = ta.Ledger.Get(ctx, call.ID(id))
		return err == nil
	})
	return e
}

func supervisorQueues(t *testing.T, ta *testApp) []map[string]any {
	t.Helper()
	tok, err := ta.AgentToken("sue", agents.RoleSupervisor, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, q := range rtGet(t, ta.URL+"/api/v1/queues", tok)["queues"].([]any) {
		out = append(out, q.(map[string]any))
	}
	return out
}

func rtGet(t *testing.T, u, tok string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func postStatus(t *testing.T, u, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRoutingOutboundFromNumberAndCallHours: an agent calls from one of
// their numbers (400 unknown number, 403 a number not theirs); an admin
// sets a number's call hours at Meta; a call from it outside them warns the
// agent and still proceeds.
func TestRoutingOutboundFromNumberAndCallHours(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := startRouteEnv(t, "2m")
	eve := e.agentOn(t, ctx, e.a, "eve", false)
	const user = "+447700900990"
	e.sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), AnswerAfter: 300 * time.Millisecond})
	// The user calls B while eve is away: a missed call grants callback
	// permission for the pair (B, user).
	mb := e.place(t, ctx, user, rtNumB)
	if err := mb.WaitState(ctx, metasim.Ended); err != nil {
		t.Fatal(err)
	}
	waitEntryOn(t, ctx, e.a, mb.ID())
	if err := eve.Available(ctx, true); err != nil {
		t.Fatal(err)
	}
	e.waitSeen(t, ctx, "eve")
	evTok, _ := e.a.AgentToken("eve", agents.RoleAgent, time.Hour)
	runRows(t, e.a.URL, []apiRow{
		{name: "unknown number", method: "POST", path: "/api/v1/calls", body: `{"to":"` + user + `","from":"999"}`, auth: "Bearer " + evTok, status: 400, code: "unknown_number"},
		{name: "not eve's number", method: "POST", path: "/api/v1/calls", body: `{"to":"` + user + `","from":"` + rtNumA + `"}`, auth: "Bearer " + evTok, status: 403, code: "not_your_number"},
		{name: "bad settings", method: "PUT", path: "/api/v1/numbers/" + rtNumB + "/settings", body: `{"calling":{"call_hours":{"status":"ENABLED","timezone_id":"Nowhere/Here"}}}`, auth: "Bearer " + rtAdminKey, status: 400, code: "bad_settings"},
		{name: "settings need an admin", method: "PUT", path: "/api/v1/numbers/" + rtNumB + "/settings", body: `{"calling":{}}`, auth: "Bearer " + evTok, status: 403, code: "forbidden"},
	})
	// Number B is open one minute a week, at a time that is not now.
	closed := time.Now().UTC().Add(-2 * time.Hour)
	day := strings.ToUpper(closed.Weekday().String())
	hours := fmt.Sprintf(`{"calling":{"call_hours":{"status":"ENABLED","timezone_id":"UTC","weekly_operating_hours":[{"day_of_week":%q,"open_time":%q,"close_time":%q}]}}}`,
		day, closed.Format("1504"), closed.Add(time.Minute).Format("1504"))
	apiRow{name: "set call hours", method: "PUT", path: "/api/v1/numbers/" + rtNumB + "/settings", body: hours, auth: "Bearer " + rtAdminKey, status: 200}.run(t, e.a.URL)
	if err := eve.Send(map[string]any{"type": "dial", "to": user, "from": rtNumB, "ref": "out"}); err != nil {
		t.Fatal(err)
	}
	m, err := eve.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "out" })
	if err != nil || m0(m) == "" {
		t.Fatalf("dial: %v %+v", err, m)
	}
	var v struct {
		Call struct {
			Warning       string `json:"warning"`
			PhoneNumberID string `json:"phone_number_id"`
			Brand         string `json:"brand"`
		} `json:"call"`
	}
	if err := json.Unmarshal(m.Raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.Call.Warning != "outside_call_hours" || v.Call.PhoneNumberID != rtNumB || v.Call.Brand != "Beta" {
		t.Fatalf("dial answer %+v", v.Call)
	}
	if err := eve.AnswerOffer(ctx, m.Call.ID); err != nil {
		t.Fatal(err)
	}
	out, ok := e.sim.OutboundCall(m.Call.ID)
	if !ok {
		t.Fatal("no outbound call at the simulator")
	}
	if out.PhoneNumberID() != rtNumB {
		t.Fatalf("called from %s, want %s", out.PhoneNumberID(), rtNumB)
	}
	if err := out.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatal(err)
	}
	hangup(t, ctx, eve, m.Call.ID)
	en := waitEntryOn(t, ctx, e.b, m.Call.ID)
	if en.PhoneNumberID != rtNumB {
		t.Fatalf("ledger entry from %q", en.PhoneNumberID)
	}
	// The call log and the usage report break down by number.
	logB := rtGet(t, e.b.URL+"/api/v1/calls?phone_number_id="+rtNumB, rtAdminKey)["calls"].([]any)
	logA := rtGet(t, e.b.URL+"/api/v1/calls?phone_number_id="+rtNumA, rtAdminKey)["calls"].([]any)
	if len(logB) != 2 || len(logA) != 0 {
		t.Fatalf("call log by number: B %d calls, A %d", len(logB), len(logA))
	}
	var byNumber map[string]any
	for _, n := range rtGet(t, e.b.URL+"/api/v1/usage", rtAdminKey)["numbers"].([]any) {
		if n.(map[string]any)["phone_number_id"] == rtNumB {
			byNumber = n.(map[string]any)
		}
	}
	if byNumber == nil || byNumber["all_calls"] != float64(2) || byNumber["calls"] != float64(1) ||
		byNumber["billed_seconds"] != float64(en.BilledSeconds) || byNumber["cost_micros"] != float64(en.CostMicros) {
		t.Fatalf("usage of B %+v", byNumber)
	}
}

// TestRoutingConfigReload: SIGHUP re-reads the file on every instance (new
// teams apply at once); a bad file is refused, counted, and the previous
// configuration stays; a number added is served without restart (its own
// client, its settings read), a number removed takes no new call while its
// call in progress continues.
func TestRoutingConfigReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := startRouteEnv(t, "2m")
	strategy := func(ta *testApp) config.Strategy {
		tm, _ := ta.Router.Config().Team("sales")
		return tm.Strategy
	}
	if strategy(e.a) != config.RoundRobin {
		t.Fatalf("sales: %v", strategy(e.a))
	}
	// A changed file, then SIGHUP to this process (both instances listen;
	// the test listens too, so the signal never falls to its default).
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(b), "strategy: round_robin", "strategy: longest_idle", 1)), 0o600))
	// Ready means Run listens to SIGHUP already.
	waitFor(t, ctx, "both instances ready", func() bool { return e.a.Ready() && e.b.Ready() })
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP)
	defer signal.Stop(sig)
	must(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	waitFor(t, ctx, "both instances to reload", func() bool {
		return strategy(e.a) == config.LongestIdle && strategy(e.b) == config.LongestIdle
	})
	// A bad file: refused, the previous configuration stays.
	must(t, os.WriteFile(e.cfgPath, []byte("teams: [\n"), 0o600))
	if err := e.a.ReloadConfig(); !errors.Is(err, config.ErrSyntax) {
		t.Fatalf("bad file: %v", err)
	}
	if strategy(e.a) != config.LongestIdle {
		t.Fatal("a bad file changed the configuration")
	}
	if n := metricValue(t, e.a, `callgw_config_reloads_total{result="error"}`); n != 1 {
		t.Fatalf("reload errors %v", n)
	}

	// Numbers: eve (beta, B's team) is in a call to B when a reload removes
	// B and adds C (its own client and token, no restart).
	eve := e.agentOn(t, ctx, e.a, "eve", true)
	e.waitSeen(t, ctx, "eve")
	ub := e.place(t, ctx, "+447700900781", rtNumB)
	if _, err := eve.WaitType(ctx, "call_offered", ub.ID()); err != nil {
		t.Fatal(err)
	}
	takeCall(t, ctx, eve, ub)
	good := strings.Replace(string(b), "strategy: round_robin", "strategy: longest_idle", 1)
	swapped := strings.Replace(good, `"`+rtNumB+`"
    brand: Beta`, `"`+rtNumC+`"
    brand: Gamma`, 1)
	if swapped == good {
		t.Fatal("the test could not swap number B for C in the file")
	}
	must(t, os.WriteFile(e.cfgPath, []byte(swapped), 0o600))
	for _, ta := range []*testApp{e.a, e.b} {
		must(t, ta.ReloadConfig())
	}
	// The call in progress to B (removed) continues and ends as usual.
	if eve.Has(func(m agentclient.Msg) bool { return m.Type == "call_ended" && m.Call != nil && m.Call.ID == ub.ID() }) {
		t.Fatal("the reload ended the call in progress to a removed number")
	}
	must(t, ub.Hangup(ctx))
	if ended, err := eve.WaitType(ctx, "call_ended", ub.ID()); err != nil || ended.Reason != "user_hangup" {
		t.Fatalf("the end of a call to a removed number: %v %q (want Meta's terminate applied: user_hangup)", err, ended.Reason)
	}
	waitEntryOn(t, ctx, e.a, ub.ID())
	// A new call to B is not served any more.
	foreign := func() float64 {
		return metricValue(t, e.a, `callgw_webhooks_total{event="foreign_number",result="ignored"}`) +
			metricValue(t, e.b, `callgw_webhooks_total{event="foreign_number",result="ignored"}`)
	}
	f0 := foreign()
	ub2 := e.place(t, ctx, "+447700900782", rtNumB)
	waitFor(t, ctx, "the call to removed number B ignored", func() bool { return foreign() > f0 })
	if offeredTo(eve, ub2.ID()) {
		t.Fatal("a call to a removed number was offered")
	}
	_ = ub2.Hangup(ctx)
	// A call to C (added) rings C's team with C's brand, on both instances.
	for _, ta := range []*testApp{e.a, e.b} {
		if v := ta.Ctrl.RoutingView(""); len(v.Numbers) != 2 || v.Numbers[1].PhoneNumberID != rtNumC {
			t.Fatalf("numbers after reload: %+v", v.Numbers)
		}
	}
	uc := e.place(t, ctx, "+447700900783", rtNumC)
	m, err := eve.WaitType(ctx, "call_offered", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if brand, num, team := offeredCall(t, m); brand != "Gamma" || num != rtNumC || team != "beta" {
		t.Fatalf("call to C offered with brand %q number %q team %q", brand, num, team)
	}
	takeCall(t, ctx, eve, uc)
	hangup(t, ctx, eve, uc.ID())
	// C's calling settings were read from Meta at the reload (through C's client).
	if raw, err := e.a.Ctrl.NumberSettings(ctx, rtNumC); err != nil || raw == nil {
		t.Fatalf("settings of C after reload: %s %v", raw, err)
	}
}

// TestRoutingLivePermissionPerNumber: Meta's live call_permissions is read
// for every number through that number's own client: the user granted
// number B a permission that no webhook reported (the local model says no
// permission for the pair (B, user)); a dial from B asks Meta about (B,
// user), Meta says yes and wins, and the call is placed from B.
func TestRoutingLivePermissionPerNumber(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := startRouteEnv(t, "2m")
	eve := e.agentOn(t, ctx, e.a, "eve", true)
	e.waitSeen(t, ctx, "eve")
	const user = "+447700900995"
	e.sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), AnswerAfter: 300 * time.Millisecond})
	must(t, e.sim.GrantPermission(rtNumB, user, false))
	liveReads := func(pnid string) int {
		n := 0
		for _, r := range e.sim.Requests() {
			if r.Edge == "call_permissions" && r.PhoneNumberID == pnid {
				n++
			}
		}
		return n
	}
	readsB, readsA := liveReads(rtNumB), liveReads(rtNumA)
	before := metricValue(t, e.a, `callgw_permission_disagreements_total{op="call"}`)
	// The local model alone would refuse: no webhook said so.
	evTok, _ := e.a.AgentToken("eve", agents.RoleAgent, time.Hour)
	var st map[string]any
	must(t, json.Unmarshal([]byte(rtGetRaw(t, e.a.URL+"/api/v1/permissions/"+user, evTok)), &st))
	if st["can_call"] != false {
		t.Fatalf("local model of (A, user): %+v", st)
	}
	// permission_query from B shows Meta's view of (B, user); from A the
	// user has no permission (Meta agrees with the local model).
	ann := e.agentOn(t, ctx, e.a, "ann", false) // sales: A's team
	query := func(from string) map[string]any {
		ref, ag := "q-"+from, eve
		if from == rtNumA {
			ag = ann
		}
		must(t, ag.Send(map[string]any{"type": "permission_query", "to": user, "from": from, "ref": ref}))
		m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == ref })
		if err != nil || m.Type != "permission" {
			t.Fatalf("permission_query from %s: %v %+v", from, err, m)
		}
		var body struct {
			Permission map[string]any `json:"permission"`
		}
		must(t, json.Unmarshal(m.Raw, &body))
		return body.Permission
	}
	q0 := metricValue(t, e.a, `callgw_permission_disagreements_total{op="query"}`)
	if p := query(rtNumB); p["can_call"] != true || p["status"] != "temporary" {
		t.Fatalf("permission_query from B: %+v", p)
	}
	if p := query(rtNumA); p["can_call"] != false || p["status"] != "no_permission" {
		t.Fatalf("permission_query from A: %+v", p)
	}
	if q := metricValue(t, e.a, `callgw_permission_disagreements_total{op="query"}`); q != q0+1 {
		t.Fatalf("query disagreements %v -> %v", q0, q)
	}
	readsB, readsA = liveReads(rtNumB), liveReads(rtNumA)
	must(t, eve.Send(map[string]any{"type": "dial", "to": user, "from": rtNumB, "ref": "live"}))
	m, err := eve.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "live" })
	if err != nil || m0(m) == "" {
		t.Fatalf("dial from B with Meta's live permission: %v %+v", err, m)
	}
	if got := liveReads(rtNumB); got != readsB && got != readsB+1 {
		t.Fatalf("call_permissions reads of B %d -> %d, want at most one more (cached)", readsB, got)
	}
	if got := liveReads(rtNumA); got != readsA {
		t.Fatalf("call_permissions of A read for a call from B (%d -> %d)", readsA, got)
	}
	if after := metricValue(t, e.a, `callgw_permission_disagreements_total{op="call"}`); after != before+1 {
		t.Fatalf("disagreements %v -> %v", before, after)
	}
	must(t, eve.AnswerOffer(ctx, m.Call.ID))
	out, ok := e.sim.OutboundCall(m.Call.ID)
	if !ok || out.PhoneNumberID() != rtNumB {
		t.Fatalf("outbound call at the simulator: %v from %v", ok, out)
	}
	must(t, out.WaitState(ctx, metasim.Accepted))
	hangup(t, ctx, eve, m.Call.ID)
}

// rtGetRaw GETs url with a bearer token and returns the body (200 only).
func rtGetRaw(t *testing.T, u, tok string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}
