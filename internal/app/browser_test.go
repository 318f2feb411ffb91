package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/browsertest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

// Real-browser end-to-end tests: Debian Chromium (fake microphone playing
// testdata/audio/agent-1000.wav) drives the real agent and supervisor pages
// served by the whole app, with the simulator playing Meta and a real
// redis-server behind it. Every wait is bounded by bstep.

const bstep = 20 * time.Second // bound on each wait for the page, the app or the simulator

// startBrowserApp starts the app (a ring timeout long enough for a reload
// while ringing) and a headless Chromium whose microphone plays 1000 Hz.
func startBrowserApp(t *testing.T) (*testApp, *browsertest.Browser) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if browsertest.ExecPath("") == "" {
		t.Skip("chromium not installed")
	}
	ta := startApp(t, "-ring-timeout", "30s")
	wav, err := filepath.Abs("../../testdata/audio/agent-1000.wav")
	if err != nil {
		t.Fatal(err)
	}
	b := browsertest.Start(t, browsertest.Options{FakeAudioCapture: wav, Timeout: 90 * time.Second})
	// The browser must go before the app stops so that no page holds a leg.
	t.Cleanup(b.Close)
	return ta, b
}

func token(t *testing.T, ta *testApp, id string, role agents.Role) string {
	t.Helper()
	tok, err := ta.AgentToken(id, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openAgent signs agent in on the tab of ctx and waits until the page is
// idle and, when available is true, until the gateway confirmed the presence.
func openAgent(t *testing.T, ctx context.Context, ta *testApp, agent string, available bool) {
	t.Helper()
	must(t, browsertest.Navigate(ctx, ta.URL+"/agent#token="+token(t, ta, agent, agents.RoleAgent)))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && !location.hash`, bstep))
	if got, _ := browsertest.Text(ctx, "agent-name"); got != agent {
		t.Fatalf("agent name %q, want %q", got, agent)
	}
	if !available {
		return
	}
	must(t, browsertest.Click(ctx, "presence-toggle", bstep))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.presence === "available" && document.querySelector('[data-testid="presence-toggle"]').getAttribute('aria-pressed') === 'true'`, bstep))
	waitFor(t, deadline(t), "the hub to see "+agent+" available", func() bool { return ta.Hub.AvailableAgents()[agent] })
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), bstep)
	t.Cleanup(cancel)
	return ctx
}

// sel is the selector of the element with testID and data-call-id id.
func sel(testID, id string) string {
	return fmt.Sprintf(`[data-testid=%q][data-call-id=%q]`, testID, id)
}

func visible(testID, id string) string {
	return fmt.Sprintf(`(e => !!e && e.offsetParent !== null)(document.querySelector(%q))`, sel(testID, id))
}

func clickIn(t *testing.T, ctx context.Context, css string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, bstep)
	defer cancel()
	css += ":not([disabled])"
	if err := chromedp.Do(cctx, chromedp.WaitVisible(chromedp.CSS(css)), chromedp.Click(chromedp.CSS(css))); err != nil {
		t.Fatalf("click %s: %v", css, err)
	}
}

// audioBothWays checks the simulated WhatsApp user hears the browser's
// 1000 Hz and the page's WebAudio analyser hears the user's 440 Hz.
func audioBothWays(t *testing.T, ctx context.Context, uc *metasim.UserCall) {
	t.Helper()
	must(t, browsertest.WaitTrue(ctx, `Math.abs(window.callgwTest.remoteFreq - 440) < 20 && window.callgwTest.remoteLevel > 0.01`, bstep))
	wctx, cancel := context.WithTimeout(ctx, bstep)
	defer cancel()
	must(t, uc.WaitReceived(wctx, uc.ReceivedCount()+100)) // 2 s more of the browser's voice
	checkTone(t, "WhatsApp user", uc.Received(), 1000)
}

// fmtMicros is the page's integer micro-USD format: 4 decimals, truncated,
// "00" at the end dropped.
func fmtMicros(m int64) string {
	s := fmt.Sprintf("%07d", m)
	dollars, frac := s[:len(s)-6], s[len(s)-6:len(s)-2]
	if strings.HasSuffix(frac, "00") {
		frac = frac[:2]
	}
	return "$" + dollars + "." + frac
}

func TestBrowserFmtMicros(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "$0.00"}, {367, "$0.0003"}, {1100, "$0.0011"}, {22000, "$0.0220"}, {1000000, "$1.00"}, {42878500, "$42.8785"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := fmtMicros(tc.in); got != tc.want {
				t.Fatalf("fmtMicros(%d) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestBrowserInboundCall(t *testing.T) {
	ta, b := startBrowserApp(t)
	ctx := b.Ctx
	openAgent(t, ctx, ta, "alice", true)
	must(t, browsertest.Screenshot(ctx, "agent-idle"))

	pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	uc, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+447700900240", Name: "Alice Caller", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)

	// The page rings with the caller's name and number.
	must(t, browsertest.WaitTrue(ctx, visible("incoming-call", uc.ID()), bstep))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "ringing" && window.callgwTest.ringing === true`, bstep))
	if got, _ := browsertest.Text(ctx, "caller-name"); got != "Alice Caller" {
		t.Errorf("caller name %q", got)
	}
	if got, _ := browsertest.Text(ctx, "caller-number"); got != "+447700900240" {
		t.Errorf("caller number %q (numbers are not masked in this app)", got)
	}
	must(t, browsertest.Screenshot(ctx, "agent-ringing"))

	// Accept: Meta gets pre_accept and accept, audio flows both ways.
	clickIn(t, ctx, sel("incoming-call", uc.ID())+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q && window.callgwTest.ringing === false`, uc.ID()), bstep))
	must(t, uc.WaitState(pctx, metasim.Accepted))
	must(t, browsertest.WaitNotVisible(ctx, "incoming-call", bstep))
	audioBothWays(t, ctx, uc)
	// WhatsApp's client takes the first media packet as "answered": none
	// reached the user before accept returned 200.
	if n := uc.RTPBeforeAccept(); n != 0 {
		t.Fatalf("%d RTP packets reached the WhatsApp user before accept", n)
	}
	must(t, browsertest.WaitTrue(ctx, `(s => s && s.packets_received > 50 && s.quality !== "unknown")(window.callgwTest.stats)`, bstep))
	if got, _ := browsertest.Text(ctx, "active-name"); got != "Alice Caller" {
		t.Errorf("active name %q", got)
	}
	// DTMF: the keypad opens on demand and the digits reach the WhatsApp user.
	must(t, browsertest.WaitNotVisible(ctx, "keypad", bstep))
	must(t, browsertest.Click(ctx, "keypad-toggle", bstep))
	must(t, browsertest.WaitVisible(ctx, "keypad", bstep))
	must(t, browsertest.Click(ctx, "dtmf-4", bstep))
	must(t, browsertest.Click(ctx, "dtmf-hash", bstep))
	waitFor(t, deadline(t), "DTMF at the WhatsApp user", func() bool { return uc.ReceivedDTMF() == "4#" })
	// And the other way: the caller's keys are shown to the agent.
	must(t, uc.SendDTMF("59"))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.callerKeys === "59"`, bstep))
	must(t, browsertest.Click(ctx, "keypad-toggle", bstep))
	must(t, browsertest.WaitNotVisible(ctx, "keypad", bstep))
	must(t, browsertest.Screenshot(ctx, "agent-in-call"))

	// Hang up: Graph terminate, the page is idle again, the call is in its history.
	must(t, browsertest.Click(ctx, "hangup", bstep))
	if _, err := ta.Sim.WaitRequest(pctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == uc.ID() }); err != nil {
		t.Fatal(err)
	}
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && (e => e && e.reason === "agent_hangup" && e.outcome === "answered")(window.callgwTest.lastEnded)`, bstep))
	if last, _ := browsertest.Text(ctx, "last-call"); !strings.Contains(last, "You hung up") {
		t.Errorf("last call %q", last)
	}
	must(t, uc.WaitState(pctx, metasim.Ended))
	e := waitEntry(t, pctx, ta, uc.ID())
	if e.Agent != "alice" || e.Outcome != call.Answered {
		t.Fatalf("ledger entry %+v", e)
	}
	// The page reloads its history when the call ends and again 3 s later.
	must(t, browsertest.WaitTrue(ctx, visible("history-row", uc.ID()), bstep))
	row, err := browsertest.Eval[string](ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, sel("history-row", uc.ID())))
	must(t, err)
	// With masking off (as this app runs) agents see the caller in the call log.
	if !strings.Contains(row, "+447700900240") || !strings.Contains(row, "Alice") || !strings.Contains(row, "Answered") || !strings.Contains(row, "free") {
		t.Errorf("history row %q", row)
	}
}

func TestBrowserOutboundCall(t *testing.T) {
	ta, b := startBrowserApp(t)
	ctx := b.Ctx
	const user = "+447700900250"
	ta.Sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), Name: "Dana"})
	openAgent(t, ctx, ta, "olga", true)
	pctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Typing the number shows its permission state: none yet, a request possible.
	must(t, browsertest.Type(ctx, "dial-input", "+44 7700 900250", bstep))
	must(t, browsertest.WaitTrue(ctx, `(e => e.classList.contains("no") && e.dataset.status === "no_permission")(document.querySelector('[data-testid="permission-state"]'))`, bstep))
	must(t, browsertest.WaitTrue(ctx, `!document.querySelector('[data-testid="request-permission"]').disabled && document.querySelector('[data-testid="dial-call"]').disabled`, bstep))
	st, _ := browsertest.Text(ctx, "permission-state")
	if !strings.Contains(st, "No permission yet") || !strings.Contains(st, "permission request") {
		t.Errorf("permission state before the request: %q", st)
	}

	// Request permission: Meta gets the interactive message, the simulated
	// user accepts, the grant is pushed to the page and enables Call.
	must(t, browsertest.Click(ctx, "request-permission", bstep))
	if _, err := ta.Sim.WaitRequest(pctx, func(r metasim.GraphRequest) bool { return r.Edge == "messages" && r.Status == 200 }); err != nil {
		t.Fatal(err)
	}
	must(t, browsertest.WaitTrue(ctx, `document.querySelector('[data-testid="permission-state"]').dataset.status === "temporary" && !document.querySelector('[data-testid="dial-call"]').disabled`, bstep))
	if st, _ := browsertest.Text(ctx, "permission-state"); !strings.Contains(st, "You may call") {
		t.Errorf("permission state after the grant: %q", st)
	}

	// Call: connect with the browser's offer, the user answers, audio both ways.
	must(t, browsertest.Click(ctx, "dial-call", bstep))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "connected" && window.callgwTest.callId !== ""`, bstep))
	id, err := browsertest.Eval[string](ctx, `window.callgwTest.callId`)
	must(t, err)
	uc, ok := ta.Sim.OutboundCall(id)
	if !ok {
		t.Fatalf("the simulator has no outbound call %s", id)
	}
	if uc.User() != strings.TrimPrefix(user, "+") && uc.User() != user {
		t.Fatalf("called %s, want %s", uc.User(), user)
	}
	audioBothWays(t, ctx, uc)
	// The page shows the running cost, pulse by pulse, from Meta's pickup.
	must(t, browsertest.WaitTrue(ctx, `(e => !e.hidden && /\$[0-9]/.test(e.textContent))(document.querySelector('[data-testid="call-cost"]'))`, bstep))

	// The supervisor sees the live call.
	sup := b.NewTab()
	must(t, browsertest.Navigate(sup, ta.URL+"/supervisor#token="+token(t, ta, "sup", agents.RoleSupervisor)))
	must(t, browsertest.WaitTrue(sup, fmt.Sprintf(`(e => !!e && e.textContent.includes("olga") && e.textContent.includes("Connected"))(document.querySelector(%q))`, sel("live-call-row", id)), bstep))

	// Hang up; the ledger prices it with the sample card (GB 22,000
	// micro-USD per minute, per second, rounded up) and the history shows it.
	must(t, browsertest.Click(ctx, "hangup", bstep))
	if _, err := ta.Sim.WaitRequest(pctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == id }); err != nil {
		t.Fatal(err)
	}
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && (e => e && e.outcome === "answered")(window.callgwTest.lastEnded)`, bstep))
	e := waitEntry(t, pctx, ta, id)
	if e.Direction != call.BusinessInitiated || e.Country != "GB" || e.BilledSeconds < 1 {
		t.Fatalf("ledger entry %+v", e)
	}
	want := (e.BilledSeconds*22000 + 59) / 60
	if e.CostMicros != want {
		t.Fatalf("cost %d micro-USD for %d s, want %d", e.CostMicros, e.BilledSeconds, want)
	}
	must(t, browsertest.WaitTrue(ctx, visible("history-row", id), bstep))
	row, err := browsertest.Eval[string](ctx, fmt.Sprintf(`[...document.querySelector(%q).cells].map(c => c.textContent).join("|")`, sel("history-row", id)))
	must(t, err)
	if cells := strings.Split(row, "|"); len(cells) != 5 || cells[4] != fmtMicros(want) || !strings.Contains(cells[1], "↗") {
		t.Fatalf("history row %q, want cost %s", row, fmtMicros(want))
	}

	// With a WhatsApp user on the line, the supervisor's page shows the live
	// call, the agents and this month's usage: GB billed, its cost.
	in, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+4915123456789", Name: "Jonas", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	clickIn(t, ctx, sel("incoming-call", in.ID())+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "connected" && window.callgwTest.remoteLevel > 0.01`, bstep))
	reload(t, sup)
	must(t, browsertest.WaitTrue(sup, fmt.Sprintf(`(e => !!e && e.textContent.includes("Connected") && e.textContent.includes("Jonas"))(document.querySelector(%q))`, sel("live-call-row", in.ID())), bstep))
	must(t, browsertest.WaitTrue(sup, `!!document.querySelector('[data-testid="usage-bar"][data-country="GB"]') && !!document.querySelector('[data-testid="agent-row"][data-agent="olga"]')`, bstep))
	// Calling cost is this call's; the permission request's conversation is
	// priced apart and both add up to the month's total.
	supTok := token(t, ta, "sup", agents.RoleSupervisor)
	var rep billing.UsageReport
	getJSON(t, ta, "/api/v1/usage?month="+e.EndedAt.UTC().Format("2006-01"), supTok, &rep)
	if rep.Totals.CallCostMicros != want || rep.Totals.CostMicros != want+rep.Totals.ConversationCostMicros+rep.Totals.MessageCostMicros {
		t.Fatalf("usage totals %+v, want call cost %d", rep.Totals, want)
	}
	for id, v := range map[string]int64{"usage-total-cost": want, "usage-conversation-cost": rep.Totals.ConversationCostMicros, "usage-grand-total": rep.Totals.CostMicros} {
		if got, _ := browsertest.Text(sup, id); got != fmtMicros(v) {
			t.Errorf("%s %q, want %s", id, got, fmtMicros(v))
		}
	}
	if got, _ := browsertest.Text(sup, "perm-accepted"); !strings.Contains(got, "1") {
		t.Errorf("accepted permission requests %q", got)
	}
	// Let a poll show the call's duration running before the picture.
	must(t, browsertest.WaitTrue(sup, fmt.Sprintf(`document.querySelector(%q).cells[4].textContent !== "00:00"`, sel("live-call-row", in.ID())), bstep))
	must(t, browsertest.Screenshot(sup, "supervisor"))
	must(t, in.Hangup(pctx))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && (e => e && e.reason === "user_hangup")(window.callgwTest.lastEnded)`, bstep))
}

// reload reloads the tab's page and checks a new document was loaded.
func reload(t *testing.T, ctx context.Context) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, bstep)
	defer cancel()
	if _, err := browsertest.Eval[bool](ctx, `window.beforeReload = true`); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(rctx, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if old, err := browsertest.Eval[bool](ctx, `window.beforeReload === true`); err != nil || old {
		t.Fatalf("the page was not reloaded (%v)", err)
	}
}

func TestBrowserTwoPagesOneCall(t *testing.T) {
	ta, b := startBrowserApp(t)
	ann, ben := b.Ctx, b.NewTab()
	openAgent(t, ann, ta, "ann", true)
	openAgent(t, ben, ta, "ben", true)
	pctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	uc, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+447700900260", Name: "Chloé", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	ringing := fmt.Sprintf(`window.callgwTest.state === "ringing" && window.callgwTest.ringingIds.includes(%q) && %s`, uc.ID(), visible("incoming-call", uc.ID()))
	for _, tab := range []context.Context{ann, ben} {
		must(t, browsertest.WaitTrue(tab, ringing, bstep))
	}

	// Reloading a ringing page keeps the call ringing there, and it can still take it.
	reload(t, ben)
	must(t, browsertest.WaitTrue(ben, `window.callgwTest.state !== "signed_out" && !!document.querySelector('[data-testid="agent-name"]').textContent`, bstep))
	must(t, browsertest.WaitTrue(ben, ringing, bstep))
	if got, _ := browsertest.Text(ben, "caller-name"); got != "Chloé" {
		t.Errorf("caller name after the reload %q", got)
	}
	must(t, browsertest.WaitTrue(ben, `window.callgwTest.presence === "available"`, bstep))
	if uc.Reached(metasim.Accepted) || uc.Reached(metasim.Ended) {
		t.Fatalf("call %s after the reload, want it still unanswered", uc.State())
	}
	clickIn(t, ben, sel("incoming-call", uc.ID())+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ben, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q`, uc.ID()), bstep))

	// The other page stops ringing: its panel goes and the ringtone stops.
	must(t, browsertest.WaitTrue(ann, fmt.Sprintf(`window.callgwTest.state === "idle" && window.callgwTest.ringing === false && !document.querySelector(%q)`, sel("incoming-call", uc.ID())), bstep))
	must(t, uc.WaitState(pctx, metasim.Accepted))
	audioBothWays(t, ben, uc)

	// Reloading the page that lost the race does not bring the call back.
	reload(t, ann)
	must(t, browsertest.WaitTrue(ann, `window.callgwTest.state === "idle" && window.callgwTest.ringing === false && window.callgwTest.callId === ""`, bstep))
	must(t, browsertest.WaitNotVisible(ann, "incoming-call", bstep))
	must(t, browsertest.WaitNotVisible(ann, "active-call", bstep))
	n := 0
	for _, r := range ta.Sim.Requests() {
		if r.Action == "accept" && r.CallID == uc.ID() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d accepts sent to Meta, want 1", n)
	}

	must(t, browsertest.Click(ben, "hangup", bstep))
	if _, err := ta.Sim.WaitRequest(pctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == uc.ID() }); err != nil {
		t.Fatal(err)
	}
	must(t, browsertest.WaitTrue(ben, `window.callgwTest.state === "idle"`, bstep))
	if e := waitEntry(t, pctx, ta, uc.ID()); e.Agent != "ben" || e.Outcome != call.Answered {
		t.Fatalf("ledger entry %+v", e)
	}
}
