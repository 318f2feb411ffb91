package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/browsertest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

// Hold and a blind transfer on the real agent pages: ann takes the call,
// puts the caller on hold (the caller hears the hold music), resumes, then
// transfers to ben, who accepts it from his ringing card.
func TestBrowserHoldAndTransfer(t *testing.T) {
	ta, b := startBrowserApp(t)
	ann, ben := b.Ctx, b.NewTab()
	openAgent(t, ann, ta, "ann", true)
	openAgent(t, ben, ta, "ben", true)
	pctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	uc, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+447700900270", Name: "Dana", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	id := uc.ID()
	must(t, browsertest.WaitTrue(ann, visible("incoming-call", id), bstep))
	clickIn(t, ann, sel("incoming-call", id)+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ann, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q`, id), bstep))
	must(t, uc.WaitState(pctx, metasim.Accepted))
	audioBothWays(t, ann, uc)

	t.Run("hold: the caller hears the hold music; resume", func(t *testing.T) {
		must(t, browsertest.Click(ann, "hold", bstep))
		must(t, browsertest.WaitTrue(ann, `window.callgwTest.onHold === true && document.querySelector('[data-testid="hold"]').getAttribute('aria-pressed') === 'true'`, bstep))
		wctx, cancel := context.WithTimeout(pctx, bstep)
		defer cancel()
		must(t, uc.WaitReceived(wctx, uc.ReceivedCount()+100))
		hearsPrompt(t, "caller on hold", uc.Received(), holdPrompt(t), 75)
		must(t, browsertest.Screenshot(ann, "agent-on-hold"))
		must(t, browsertest.Click(ann, "hold", bstep))
		must(t, browsertest.WaitTrue(ann, `window.callgwTest.onHold === false`, bstep))
		must(t, uc.WaitReceived(wctx, uc.ReceivedCount()+100))
		checkTone(t, "caller after resume", tail(uc.Received(), 50), 1000)
	})

	t.Run("blind transfer to ben", func(t *testing.T) {
		must(t, browsertest.Click(ann, "transfer-toggle", bstep))
		must(t, browsertest.WaitVisible(ann, "transfer-panel", bstep))
		must(t, browsertest.Type(ann, "transfer-target", "ben", bstep))
		must(t, browsertest.Click(ann, "transfer-start", bstep))
		must(t, browsertest.WaitTrue(ann, `window.callgwTest.transfer === "ringing" && window.callgwTest.onHold === true`, bstep))
		must(t, browsertest.WaitTrue(ben, visible("incoming-call", id), bstep))
		card, err := browsertest.Eval[string](ben, fmt.Sprintf(`document.querySelector(%q).textContent`, sel("incoming-call", id)))
		must(t, err)
		if !strings.Contains(card, "transferred by ann") {
			t.Errorf("ben's ringing card %q does not say who transfers", card)
		}
		must(t, browsertest.Screenshot(ann, "agent-transferring"))
		clickIn(t, ben, sel("incoming-call", id)+` [data-testid="accept"]`)
		must(t, browsertest.WaitTrue(ben, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q && window.callgwTest.media === "up"`, id), bstep))
		must(t, browsertest.WaitTrue(ann, `window.callgwTest.state === "idle" && (e => e && e.reason === "transferred")(window.callgwTest.lastEnded)`, bstep))
		audioBothWays(t, ben, uc) // ben's page hears the caller; the caller hears ben's microphone
	})
	must(t, browsertest.Click(ben, "hangup", bstep))
	e := waitEntry(t, pctx, ta, id)
	if len(e.Handlers) != 2 || e.Handlers[0].Agent != "ann" || e.Handlers[1].Agent != "ben" {
		t.Fatalf("handlers %+v", e.Handlers)
	}
	checkContinuity(t, uc)
}

// A supervisor listens from the real supervisor page: the page mixes two
// tracks, the caller (440 Hz) and the agent (1000 Hz).
func TestBrowserSupervisorListen(t *testing.T) {
	ta, b := startBrowserApp(t)
	pctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ag := ta.agentPlaying(t, pctx, "alice", "agent-1000.ogg", agents.RoleAgent, true)
	uc := connectCall(t, pctx, ta, ag, "+447700900280")
	id := uc.ID()

	ctx := b.Ctx
	must(t, browsertest.Navigate(ctx, ta.URL+"/supervisor#token="+token(t, ta, "sue", agents.RoleSupervisor)))
	row := fmt.Sprintf(`[data-testid="live-call-row"][data-call-id=%q]`, id)
	must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`!!document.querySelector(%q)`, row+` [data-testid="monitor-listen"]`), bstep))
	clickIn(t, ctx, row+` [data-testid="monitor-listen"]`)
	if err := browsertest.WaitTrue(ctx, `(m => m && m.state === "connected" && m.mode === "listen" && m.tracks === 2)(window.callgwTest.monitor)`, bstep); err != nil {
		m, _ := browsertest.Eval[string](ctx, `JSON.stringify(window.callgwTest.monitor)`)
		t.Fatalf("%v: monitor %s", err, m)
	}
	hears := func(hz int) string {
		return fmt.Sprintf(`(window.callgwTest.monitor.trackAudio || []).some(a => a.level > 0.01 && Math.abs(a.freq - %d) < 30)`, hz)
	}
	must(t, browsertest.WaitTrue(ctx, hears(440)+" && "+hears(1000), bstep))
	must(t, browsertest.Screenshot(ctx, "supervisor-listening"))
	if n := len(ag.ReceivedTrack(id, "side")); n != 0 {
		t.Fatalf("the agent received %d packets from a listening supervisor", n)
	}
	clickIn(t, ctx, row+` [data-testid="monitor-stop"]`)
	must(t, browsertest.WaitTrue(ctx, `(m => m && m.state === "closed" && m.callId === "")(window.callgwTest.monitor)`, bstep))
	wctx, wcancel := context.WithTimeout(pctx, bstep)
	defer wcancel()
	must(t, uc.WaitReceived(wctx, 100))
	checkContinuity(t, uc)
}

// A warm transfer on the real pages: ann consults ben (the caller holds),
// then completes; ben has the caller with audio both ways.
func TestBrowserWarmTransfer(t *testing.T) {
	ta, b := startBrowserApp(t)
	ann, ben := b.Ctx, b.NewTab()
	openAgent(t, ann, ta, "ann", true)
	openAgent(t, ben, ta, "ben", true)
	pctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	uc, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+447700900290", Name: "Eli", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	id := uc.ID()
	must(t, browsertest.WaitTrue(ann, visible("incoming-call", id), bstep))
	clickIn(t, ann, sel("incoming-call", id)+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ann, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q && window.callgwTest.media === "up"`, id), bstep))
	// ben's tab rang too: it stops when ann takes the call.
	must(t, browsertest.WaitTrue(ben, `window.callgwTest.state === "idle"`, bstep))

	must(t, browsertest.Click(ann, "transfer-toggle", bstep))
	must(t, browsertest.Type(ann, "transfer-target", "ben", bstep))
	must(t, browsertest.Click(ann, "transfer-warm", bstep))
	must(t, browsertest.Click(ann, "transfer-start", bstep))
	must(t, browsertest.WaitTrue(ben, visible("incoming-call", id), bstep))
	clickIn(t, ben, sel("incoming-call", id)+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ann, `window.callgwTest.transfer === "consulting"`, bstep))
	must(t, browsertest.WaitTrue(ben, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q && window.callgwTest.connection === "connected"`, id), bstep))
	// The caller holds meanwhile.
	wctx, wcancel := context.WithTimeout(pctx, bstep)
	defer wcancel()
	must(t, uc.WaitReceived(wctx, uc.ReceivedCount()+100))
	hearsPrompt(t, "caller during the consultation", uc.Received(), holdPrompt(t), 75)
	must(t, browsertest.Screenshot(ann, "agent-consulting"))

	must(t, browsertest.WaitVisible(ann, "transfer-complete", bstep))
	must(t, browsertest.Click(ann, "transfer-complete", bstep))
	must(t, browsertest.WaitTrue(ann, `window.callgwTest.state === "idle" && (e => e && e.reason === "transferred")(window.callgwTest.lastEnded)`, bstep))
	audioBothWays(t, ben, uc)
	must(t, browsertest.Click(ben, "hangup", bstep))
	e := waitEntry(t, pctx, ta, id)
	if len(e.Handlers) != 2 || e.Handlers[1].Agent != "ben" {
		t.Fatalf("handlers %+v", e.Handlers)
	}
	checkContinuity(t, uc)
}
