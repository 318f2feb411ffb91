package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

// testApp is a whole callgw (demo wiring: the simulator plays Meta) on a
// real redis-server, serving on loopback.
type testApp struct {
	*App
	redis *redistest.Server
	stop  func()
}

func startApp(t *testing.T, extra ...string) *testApp {
	t.Helper()
	rs := redistest.Start(t)
	return startAppOn(t, rs, extra...)
}

// startAppB is startApp for benchmarks (quiet logs).
func startAppB(b *testing.B, extra ...string) *testApp {
	b.Helper()
	rs := redistest.Start(b)
	return startAppOn(b, rs, extra...)
}

func startAppOn(t testing.TB, rs *redistest.Server, extra ...string) *testApp {
	t.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-redis-url", rs.URL(), "-ring-timeout", "8s",
		"-agent-grace", "3s", "-drain-timeout", "2s", "-mask-numbers=false"}, extra...)
	return startWith(t, args, rs, nil)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (ta *testApp) agent(t *testing.T, ctx context.Context, id string) *agentclient.Client {
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
	if err := c.Available(ctx, true); err != nil {
		t.Fatal(err)
	}
	return c
}

func packets(t *testing.T, name string) [][]byte {
	t.Helper()
	f, err := os.Open("../../testdata/audio/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := oggopus.ReadPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func oggBytes(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/audio/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes (used only where
// no event exists, e.g. audio accumulating).
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkTone decodes the last ~1 s of pkts and checks the dominant frequency.
func checkTone(t *testing.T, who string, pkts [][]byte, want float64) {
	t.Helper()
	if len(pkts) > 50 {
		pkts = pkts[len(pkts)-50:]
	}
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		t.Fatalf("%s: decode: %v", who, err)
	}
	if ok, f := audiotest.HasTone(pcm, want, 20); !ok {
		t.Fatalf("%s heard %v Hz, want %v Hz", who, f, want)
	}
}

// connectCall places a user-initiated call and has agent take it, with
// audio both ways.
func connectCall(t *testing.T, ctx context.Context, ta *testApp, ag *agentclient.Client, from string) *metasim.UserCall {
	t.Helper()
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: from, Name: "Alice", Audio: oggBytes(t, "caller-440.ogg")})
	if err != nil {
		t.Fatal(err)
	}
	off, err := ag.WaitType(ctx, "call_offered", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if off.Call.Name != "Alice" || off.Call.Direction != "user_initiated" {
		t.Fatalf("offered %+v", off.Call)
	}
	if err := ag.Accept(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := ag.WaitConnected(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := uc.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Wait(ctx, func(m agentclient.Msg) bool {
		return m.Type == "call" && m.Call != nil && m.Call.ID == uc.ID() && m.Call.State == "connected"
	}); err != nil {
		t.Fatal(err)
	}
	// Meta's client takes the first media packet as "answered": nothing
	// reached the user before accept returned.
	if n := uc.RTPBeforeAccept(); n != 0 {
		t.Fatalf("%d RTP packets reached the WhatsApp user before accept", n)
	}
	return uc
}

func TestInboundCallEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "alice")
	uc := connectCall(t, ctx, ta, ag, "+447700900123")

	// pre_accept carried our answer: sdp_type answer, DTLS client.
	pre, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "pre_accept" && r.CallID == uc.ID() })
	if err != nil {
		t.Fatal(err)
	}
	if pre.SDPType != "answer" || pre.Status != 200 || !bytes.Contains(pre.Body, []byte(`a=setup:active`)) {
		t.Fatalf("pre_accept %s %d: %s", pre.SDPType, pre.Status, pre.Body)
	}
	acc, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "accept" && r.CallID == uc.ID() })
	if err != nil || acc.Status != 200 {
		t.Fatalf("accept: %v %+v", err, acc)
	}

	// Real audio both ways: 440 Hz caller -> agent, 1000 Hz agent -> caller.
	waitFor(t, ctx, "audio both ways", func() bool { return len(ag.Received(uc.ID())) > 75 && uc.ReceivedCount() > 75 })
	checkTone(t, "agent", ag.Received(uc.ID()), 440)
	checkTone(t, "caller", uc.Received(), 1000)

	// The caller presses keys: the agent is told, key by key.
	if err := uc.SendDTMF("7#"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"7", "#"} {
		m, err := ag.WaitType(ctx, "dtmf", uc.ID())
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Digit string `json:"digit"`
		}
		_ = json.Unmarshal(m.Raw, &d)
		if d.Digit != want {
			t.Fatalf("dtmf %q, want %q", d.Digit, want)
		}
	}

	// Agent hangs up: terminate reaches Meta, the agent is told, the record is kept.
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	end, err := ag.WaitType(ctx, "call_ended", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if end.Reason != "agent_hangup" || end.Outcome != "answered" {
		t.Fatalf("ended %+v", end)
	}
	if _, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == uc.ID() }); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.Direction != call.UserInitiated || e.Outcome != call.Answered || e.Agent != "alice" || e.CostMicros != 0 ||
		e.UserPhone != "+447700900123" || e.EndReason != call.AgentHangup || e.MetaDuration < 0 {
		t.Fatalf("entry %+v", e)
	}
}

func waitEntry(t *testing.T, ctx context.Context, ta *testApp, id string) billing.Entry {
	t.Helper()
	var e billing.Entry
	waitFor(t, ctx, "ledger entry", func() bool {
		var err error
		e, err = ta.Ledger.Get(ctx, call.ID(id))
		return err == nil
	})
	return e
}

func TestUserHangsUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "bob")
	uc := connectCall(t, ctx, ta, ag, "+4915123456789")
	waitFor(t, ctx, "audio", func() bool { return len(ag.Received(uc.ID())) > 25 })
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	end, err := ag.WaitType(ctx, "call_ended", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if end.Reason != "user_hangup" || end.Outcome != "answered" {
		t.Fatalf("ended %+v", end)
	}
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.EndReason != call.UserHangup || !e.DurationFromMeta() {
		t.Fatalf("entry %+v", e)
	}
	// No terminate from our side for a call the user ended.
	for _, r := range ta.Sim.Requests() {
		if r.Action == "terminate" && r.CallID == uc.ID() {
			t.Fatalf("terminate sent for a call the user ended")
		}
	}
}

func TestTwoAgentsRaceToAccept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	a1 := ta.agent(t, ctx, "ann")
	a2 := ta.agent(t, ctx, "ben")
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+33612345678", Name: "Chloé"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*agentclient.Client{a1, a2} {
		if _, err := a.WaitType(ctx, "call_offered", uc.ID()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, a := range []*agentclient.Client{a1, a2} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = a.Accept(ctx, uc.ID()) }()
	}
	wg.Wait()
	won, lost := 0, 0
	var winner, loser *agentclient.Client
	for i, err := range errs {
		a := []*agentclient.Client{a1, a2}[i]
		switch {
		case err == nil:
			won++
			winner = a
		case strings.Contains(err.Error(), "call_taken"):
			lost++
			loser = a
		default:
			t.Fatalf("accept: %v", err)
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("won %d lost %d", won, lost)
	}
	if err := winner.WaitConnected(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := loser.WaitType(ctx, "call_taken", uc.ID()); err != nil {
		t.Fatal(err)
	}
	// Exactly one accept reached Meta.
	n := 0
	for _, r := range ta.Sim.Requests() {
		if r.Action == "accept" && r.CallID == uc.ID() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d accepts sent to Meta", n)
	}
}

func TestNoAgentMeansMissed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900124"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "reject" && r.CallID == uc.ID() }); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.Outcome != call.Missed || e.EndReason != call.NoAgent {
		t.Fatalf("entry %+v", e)
	}
}

func TestRingTimeoutMeansMissed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t, "-ring-timeout", "1s")
	ag := ta.agent(t, ctx, "slow")
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900125"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_offered", uc.ID()); err != nil {
		t.Fatal(err)
	}
	end, err := ag.WaitType(ctx, "call_ended", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if end.Reason != "ring_timeout" || end.Outcome != "missed" {
		t.Fatalf("ended %+v", end)
	}
	if err := ag.Accept(ctx, uc.ID()); err == nil || !strings.Contains(err.Error(), "unknown_call") {
		t.Fatalf("accept after the end: %v", err)
	}
}

// connectWebhook builds a signed user-initiated connect for a new call id
// from a call the simulator already placed.
// The simulator records a webhook once its delivery returned, which may be
// after callgw already acted on it: wait for the record.
func webhookFor(t *testing.T, ta *testApp, callID, field string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body []byte
	waitFor(t, ctx, field+" webhook for "+callID, func() bool {
		for _, w := range ta.Sim.Webhooks() {
			if bytes.Contains(w.Body, []byte(callID)) && bytes.Contains(w.Body, []byte(field)) {
				body = w.Body
				return true
			}
		}
		return false
	})
	return body
}

func postWebhook(t *testing.T, ta *testApp, body []byte, sig string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ta.URL+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDuplicateAndReorderedWebhooks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "dup")
	uc := connectCall(t, ctx, ta, ag, "+447700900126")

	// Meta delivers the same connect again (also concurrently): acknowledged, one call.
	connect := webhookFor(t, ta, uc.ID(), `"event":"connect"`)
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st := postWebhook(t, ta, connect, ta.Sim.Sign(connect)); st != 200 {
				t.Errorf("duplicate connect: %d", st)
			}
		}()
	}
	wg.Wait()
	if n := len(ta.Ctrl.Live()); n != 1 {
		t.Fatalf("%d live calls after duplicates", n)
	}
	pre := 0
	for _, r := range ta.Sim.Requests() {
		if r.Action == "pre_accept" && r.CallID == uc.ID() {
			pre++
		}
	}
	if pre != 1 {
		t.Fatalf("%d pre_accepts", pre)
	}
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", uc.ID()); err != nil {
		t.Fatal(err)
	}
	term := webhookFor(t, ta, uc.ID(), `"event":"terminate"`)
	waitEntry(t, ctx, ta, uc.ID())
	// Terminate replayed, connect replayed after terminate: acknowledged, nothing new.
	for _, body := range [][]byte{term, connect, term} {
		if st := postWebhook(t, ta, body, ta.Sim.Sign(body)); st != 200 {
			t.Fatalf("replay: %d", st)
		}
	}
	if n := len(ta.Ctrl.Live()); n != 0 {
		t.Fatalf("%d live calls after replays", n)
	}
	if ag.Has(func(m agentclient.Msg) bool { return m.Type == "call_offered" && m.CallID == uc.ID() }) {
		t.Fatal("replayed connect rang agents again")
	}

	// Terminate before connect for a new call: recorded once; the late connect is ignored.
	newID := "wacid.REORDERED" + fmt.Sprint(time.Now().UnixNano())
	t2 := bytes.ReplaceAll(term, []byte(uc.ID()), []byte(newID))
	c2 := bytes.ReplaceAll(connect, []byte(uc.ID()), []byte(newID))
	if st := postWebhook(t, ta, t2, ta.Sim.Sign(t2)); st != 200 {
		t.Fatalf("early terminate: %d", st)
	}
	if st := postWebhook(t, ta, c2, ta.Sim.Sign(c2)); st != 200 {
		t.Fatalf("late connect: %d", st)
	}
	if n := len(ta.Ctrl.Live()); n != 0 {
		t.Fatalf("late connect started a call")
	}
	// The terminate carries start_time: by the reference the call was
	// picked up, so it is answered and keeps Meta's figures.
	e := waitEntry(t, ctx, ta, newID)
	if e.Outcome != call.Answered || e.MetaStart.IsZero() || !e.DurationFromMeta() {
		t.Fatalf("reordered entry %+v", e)
	}
}

func TestWebhookBadInputChangesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "guard")
	uc := connectCall(t, ctx, ta, ag, "+447700900127")
	connect := webhookFor(t, ta, uc.ID(), `"event":"connect"`)
	fresh := bytes.ReplaceAll(connect, []byte(uc.ID()), []byte("wacid.BADSIG"))
	keys := func() int {
		n, err := ta.Redis.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	before := keys()
	cases := []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"no signature", fresh, "", 401},
		{"wrong signature", fresh, "sha256=" + strings.Repeat("ab", 32), 401},
		{"signature of another body", fresh, ta.Sim.Sign(connect), 401},
		{"malformed JSON", []byte(`{"object":`), ta.Sim.Sign([]byte(`{"object":`)), 400},
		{"oversized", bytes.Repeat([]byte(" "), 3<<20+10), "", 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if st := postWebhook(t, ta, tc.body, tc.sig); st != tc.want {
				t.Fatalf("status %d, want %d", st, tc.want)
			}
		})
	}
	if after := keys(); after != before {
		t.Fatalf("redis keys %d -> %d after bad input", before, after)
	}
	if n := len(ta.Ctrl.Live()); n != 1 {
		t.Fatalf("%d live calls", n)
	}
	// Subscription check.
	resp, err := http.Get(ta.URL + "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=" + ta.Cfg.VerifyToken + "&hub.challenge=42")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "42" {
		t.Fatalf("challenge: %d %q", resp.StatusCode, b)
	}
	resp, err = http.Get(ta.URL + "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=42")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("bad verify token: %d", resp.StatusCode)
	}
}

func TestAgentProtocolErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "proto")
	for _, tc := range []struct {
		msg  map[string]any
		code string
	}{
		{map[string]any{"type": "accept", "call_id": "wacid.nope", "ref": "1"}, "unknown_call"},
		{map[string]any{"type": "answer", "call_id": "wacid.nope", "ref": "2"}, "bad_message"},
		{map[string]any{"type": "teleport", "ref": "3"}, "bad_message"},
		{map[string]any{"type": "dtmf", "call_id": "wacid.nope", "digits": "12x", "ref": "4"}, "bad_message"},
		{map[string]any{"type": "hello", "v": 1, "token": "x", "ref": "5"}, "out_of_turn"},
	} {
		if err := ag.Send(tc.msg); err != nil {
			t.Fatal(err)
		}
		m, err := ag.WaitType(ctx, "error", "")
		if err != nil {
			t.Fatal(err)
		}
		if m.Code != tc.code || m.Ref != tc.msg["ref"] {
			t.Fatalf("%v: got %s (ref %s)", tc.msg, m.Code, m.Ref)
		}
	}
	// A call is ringing: answer before accept is out of turn; accept works after.
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900128"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_offered", uc.ID()); err != nil {
		t.Fatal(err)
	}
	_ = ag.Send(map[string]any{"type": "answer", "call_id": uc.ID(), "sdp": "v=0"})
	if m, err := ag.WaitType(ctx, "error", ""); err != nil || m.Code != "out_of_turn" {
		t.Fatalf("answer out of turn: %v %+v", err, m)
	}
	if err := ag.Accept(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	// Bad token: rejected and closed.
	_, err = agentclient.Dial(ctx, "ws"+strings.TrimPrefix(ta.URL, "http")+"/ws/agent", "not.a.token", agentclient.Options{})
	if err == nil || !strings.Contains(err.Error(), "unauthenticated") {
		t.Fatalf("bad token: %v", err)
	}
}

func TestAgentSocketDropKeepsAudioAndReconnectGetsCallBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "flaky")
	uc := connectCall(t, ctx, ta, ag, "+447700900129")
	ag.CloseSocket() // the websocket drops; the peer connection lives on
	n := uc.ReceivedCount()
	waitFor(t, ctx, "audio after the socket dropped", func() bool { return uc.ReceivedCount() > n+100 }) // > 2 s, past nothing ending
	checkTone(t, "caller", uc.Received(), 1000)
	// Reconnect: welcome lists the call.
	tok, _ := ta.AgentToken("flaky", agents.RoleAgent, time.Hour)
	ag2, err := agentclient.Dial(ctx, "ws"+strings.TrimPrefix(ta.URL, "http")+"/ws/agent", tok,
		agentclient.Options{Audio: packets(t, "agent-1000.ogg"), LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ag2.Close()
	found := false
	for _, c := range ag2.Welcome.Calls {
		found = found || (c.ID == uc.ID() && c.State == "connected")
	}
	if !found {
		t.Fatalf("welcome calls %+v", ag2.Welcome.Calls)
	}
	// The page reloaded and lost its peer: resume builds a new agent leg.
	ag.DropPeer(uc.ID())
	if err := ag2.Resume(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := ag2.WaitConnected(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "audio on the new leg", func() bool { return len(ag2.Received(uc.ID())) > 50 })
	checkTone(t, "agent after resume", ag2.Received(uc.ID()), 440)
	if uc.State() == metasim.Ended {
		t.Fatal("call ended during the reconnect")
	}
}

func TestClosedTabEndsCallAfterGrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "gone")
	uc := connectCall(t, ctx, ta, ag, "+447700900130")
	ag.Close() // socket and peer gone, like a closed tab
	if err := uc.WaitState(ctx, metasim.Ended); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == uc.ID() }); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.EndReason != call.AgentLost || !strings.HasPrefix(e.MediaFailure, "agent:") {
		t.Fatalf("entry %+v", e)
	}
	t.Logf("closed tab diagnosed as %s", e.MediaFailure)
}

func TestMetricsAndHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "m")
	uc := connectCall(t, ctx, ta, ag, "+447700900131")
	_ = uc
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get(ta.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(ta.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`callgw_webhooks_total{event="call_connect",result="ok"} 1`, "callgw_calls_active 1",
		"callgw_agents_connected 1", "callgw_call_setup_duration_seconds_count 1"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if bytes.Contains(b, []byte("447700900131")) || bytes.Contains(b, []byte(uc.ID())) {
		t.Fatal("metrics carry a phone number or call id")
	}
}

var _ = errors.New
var _ = json.Marshal

// A Redis blip at the end of a call loses no record: it waits in memory and
// reaches the ledger when Redis is back.
func TestRecordSurvivesRedisBlipAtCallEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-lease-ttl", "3s")
	ag := ta.agent(t, ctx, "blip")
	uc := connectCall(t, ctx, ta, ag, "+447700900140")
	ta.redis.Stop()
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", uc.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "record kept in memory", func() bool { return ta.Ctrl.PendingRecords() > 0 })
	ta.redis.Restart()
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.EndReason != call.AgentHangup || e.Outcome != call.Answered || e.Agent != "blip" {
		t.Fatalf("entry %+v", e)
	}
	waitFor(t, ctx, "nothing pending", func() bool { return ta.Ctrl.PendingRecords() == 0 })
}

// testutilCount sums a counter family from the app's registry.
func testutilCount(t *testing.T, ta *testApp, name string) float64 {
	t.Helper()
	mfs, err := ta.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// The media watchdog: the caller's audio stops (its network died) but no
// terminate comes; the gateway ends the call through the Graph API.
func TestMediaWatchdogEndsSilentCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t, "-media-timeout", "2s", "-media-start-timeout", "2s")
	ag := ta.agent(t, ctx, "watch")
	uc := connectCall(t, ctx, ta, ag, "+447700900170")
	waitFor(t, ctx, "audio", func() bool { return len(ag.Received(uc.ID())) > 25 })
	uc.StopMedia()
	end, err := ag.WaitType(ctx, "call_ended", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if end.Reason != "media_timeout" {
		t.Fatalf("ended %+v", end)
	}
	if _, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == uc.ID() }); err != nil {
		t.Fatal(err)
	}
	// The record says why, in media's words: RTP came, then stopped.
	if e := waitEntry(t, ctx, ta, uc.ID()); e.EndReason != call.MediaTimeout || e.MediaFailure != "whatsapp:media_stopped" {
		t.Fatalf("entry %+v", e)
	}
	if v := metricValue(t, ta, `callgw_media_failures_total{cause="media_stopped",leg="whatsapp"}`); v != 1 {
		t.Fatalf("media failures metric %v", v)
	}
}
