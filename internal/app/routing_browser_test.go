package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/browsertest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// TestBrowserRoutingBrandAndQueue: a caller waits (nobody of the number's
// team is free): the supervisor page shows them in the queue with the brand;
// the agent becomes available, the waiting call rings on the agent page
// with the brand called, and the agent takes it.
func TestBrowserRoutingBrandAndQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if browsertest.ExecPath("") == "" {
		t.Skip("chromium not installed")
	}
	hold, err := filepath.Abs("testdata/hold-660.ogg")
	must(t, err)
	cfg := filepath.Join(t.TempDir(), "callgw.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 1
teams:
  - id: sales
    name: Sales
    agents: [alice]
    strategy: ring_all
    max_wait: 5m
    max_size: 5
numbers:
  - phone_number_id: "%s"
    brand: Acme Spain
    token_env: CALLGW_ACCESS_TOKEN
    teams: [sales]
    hold_audio: %s
  - phone_number_id: "100000000000009"
    brand: Acme VIP
    token_env: CALLGW_ACCESS_TOKEN
    teams: [sales]
`, DemoPhoneNumberID, hold)), 0o600))
	ta := startApp(t, "-ring-timeout", "30s", "-config", cfg)
	wav, err := filepath.Abs("../../testdata/audio/agent-1000.wav")
	must(t, err)
	b := browsertest.Start(t, browsertest.Options{FakeAudioCapture: wav, Timeout: 90 * time.Second})
	t.Cleanup(b.Close)
	ctx := b.Ctx
	// Call hours set at Meta (admin PUT path): Acme Spain closed now with
	// a holiday, Acme VIP open all day today and tomorrow (UTC).
	now := time.Now().UTC()
	if h, m, _ := now.Clock(); h == 23 && m >= 57 {
		// "open all day" ends at 23:59 (Meta's hours are HHMM): start the
		// test in the new day rather than across midnight.
		time.Sleep(now.Truncate(24 * time.Hour).Add(24*time.Hour + 5*time.Second).Sub(now))
		now = time.Now().UTC()
	}
	closed := now.Add(-2 * time.Hour)
	hctx, hcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer hcancel()
	_, err = ta.Ctrl.UpdateNumberSettings(hctx, DemoPhoneNumberID, cloudapi.Settings{Calling: cloudapi.CallingSettings{CallHours: &cloudapi.CallHours{
		Status: "ENABLED", TimezoneID: "UTC",
		WeeklyOperatingHours: []cloudapi.OperatingHours{{DayOfWeek: strings.ToUpper(closed.Weekday().String()), OpenTime: closed.Format("1504"), CloseTime: closed.Add(time.Minute).Format("1504")}},
		HolidaySchedule:      []cloudapi.Holiday{{Date: "2030-12-25", StartTime: "0000", EndTime: "2359"}}}}})
	must(t, err)
	_, err = ta.Ctrl.UpdateNumberSettings(hctx, "100000000000009", cloudapi.Settings{Calling: cloudapi.CallingSettings{CallHours: &cloudapi.CallHours{
		Status: "ENABLED", TimezoneID: "UTC", WeeklyOperatingHours: []cloudapi.OperatingHours{
			{DayOfWeek: strings.ToUpper(now.Weekday().String()), OpenTime: "0000", CloseTime: "2359"},
			{DayOfWeek: strings.ToUpper(now.Add(24 * time.Hour).Weekday().String()), OpenTime: "0000", CloseTime: "2359"}}}}})
	must(t, err)
	openAgent(t, ctx, ta, "alice", false)
	// The dialer shows the chosen number's hours next to "Call from".
	hoursOf := `(e => e ? e.dataset.open + '|' + e.textContent : '')(document.querySelector('[data-testid="dial-from-hours"]'))`
	must(t, browsertest.WaitTrue(ctx, hoursOf+`.startsWith('false|Closed now')`, bstep))
	if got, _ := browsertest.Eval[string](ctx, hoursOf); !strings.Contains(got, "(UTC)") || !strings.Contains(got, "2030-12-25") {
		t.Errorf("dialer hours of Acme Spain %q", got)
	}
	_, err = browsertest.Eval[bool](ctx, `(s => { s.value = '100000000000009'; s.dispatchEvent(new Event('change')); return true; })(document.querySelector('[data-testid="dial-from"]'))`)
	must(t, err)
	must(t, browsertest.WaitTrue(ctx, hoursOf+`.startsWith('true|Open now')`, bstep))
	must(t, browsertest.Screenshot(ctx, "agent-dialer-hours"))
	// Two numbers answer alice's team: the dialer offers both to call from.
	must(t, browsertest.WaitTrue(ctx, `(s => !!s && !s.closest('.dial-from').hidden && [...s.options].map(o => o.textContent).join('|') === 'Acme Spain|Acme VIP')(document.querySelector('[data-testid="dial-from"]'))`, bstep))

	pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	uc, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+447700900777", Name: "Queued Caller", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	must(t, uc.WaitState(pctx, metasim.Accepted)) // answered by callgw: the caller waits

	// The supervisor sees the queue, with the brand.
	sup := b.NewTab()
	must(t, browsertest.Navigate(sup, ta.URL+"/supervisor#token="+token(t, ta, "sue", agents.RoleSupervisor)))
	must(t, browsertest.WaitTrue(sup, visible("queue-row", uc.ID()), bstep))
	row := fmt.Sprintf(`document.querySelector(%q)`, sel("queue-row", uc.ID()))
	for _, want := range []struct{ testID, text string }{{"queue-position", "1"}, {"queue-brand", "Acme Spain"}} {
		got, err := browsertest.Eval[string](sup, fmt.Sprintf(`%s.querySelector('[data-testid=%q]').textContent`, row, want.testID))
		must(t, err)
		if got != want.text {
			t.Errorf("queue %s %q, want %q", want.testID, got, want.text)
		}
	}
	must(t, browsertest.WaitTrue(sup, fmt.Sprintf(`[...document.querySelectorAll('[data-testid="filter-brand"] option')].some(o => o.value === %q)`, "Acme Spain"), bstep))
	// Each number's call hours on the supervisor page.
	for _, want := range []struct{ number, status, weekly, holidays string }{
		{DemoPhoneNumberID, "Closed now", "(UTC)", "2030-12-25 00:00–23:59"},
		{"100000000000009", "Open now", "00:00–23:59 (UTC)", "—"},
	} {
		hrow := fmt.Sprintf(`document.querySelector('[data-testid="number-hours-row"][data-number=%q]')`, want.number)
		must(t, browsertest.WaitTrue(sup, "!!"+hrow, bstep))
		got, err := browsertest.Eval[string](sup, fmt.Sprintf(`['hours-status','hours-weekly','hours-holidays'].map(k => %s.querySelector('[data-testid="' + k + '"]').textContent).join('|')`, hrow))
		must(t, err)
		parts := strings.Split(got, "|")
		if len(parts) != 3 || !strings.HasPrefix(parts[0], want.status) || !strings.Contains(parts[1], want.weekly) || parts[2] != want.holidays {
			t.Errorf("supervisor hours of %s: %q", want.number, got)
		}
	}
	must(t, browsertest.Screenshot(sup, "supervisor-queue"))

	// alice becomes available: the waiting call rings on her page with the brand.
	must(t, browsertest.Click(ctx, "presence-toggle", bstep))
	must(t, browsertest.WaitTrue(ctx, visible("incoming-call", uc.ID()), bstep))
	if got, _ := browsertest.Text(ctx, "caller-brand"); got != "Acme Spain" {
		t.Errorf("ringing card brand %q", got)
	}
	// The countdown is this agent's offer (the team's ring time, 15 s by
	// default), not the call's 30 s ring.
	must(t, browsertest.WaitTrue(ctx, `(m => !!m && +m[1] > 0 && +m[1] <= 15)((document.querySelector('[data-testid="ring-countdown"]') || {textContent: ''}).textContent.match(/^Rings for (\d+) s more$/))`, bstep))
	must(t, browsertest.Screenshot(ctx, "agent-ringing-brand"))
	clickIn(t, ctx, sel("incoming-call", uc.ID())+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q`, uc.ID()), bstep))
	if got, _ := browsertest.Text(ctx, "active-brand"); got != "To Acme Spain" {
		t.Errorf("call view brand %q", got)
	}
	audioBothWays(t, ctx, uc)
	// The queue empties on the supervisor page.
	must(t, browsertest.WaitTrue(sup, fmt.Sprintf(`!document.querySelector(%q)`, sel("queue-row", uc.ID())), bstep))

	// A caller who hangs up while waiting is a missed call: a callback task
	// on alice's page (her team's), which she claims.
	must(t, browsertest.Click(ctx, "hangup", bstep))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle"`, bstep))
	must(t, browsertest.Click(ctx, "presence-toggle", bstep)) // away
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.presence === "away"`, bstep))
	waitFor(t, deadline(t), "the hub to see alice away", func() bool { return !ta.Hub.AvailableAgents()["alice"] })
	gone, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+447700900778", Name: "Gone Caller", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	must(t, gone.WaitState(pctx, metasim.Accepted))
	must(t, browsertest.WaitTrue(sup, visible("queue-row", gone.ID()), bstep))
	must(t, gone.Hangup(pctx))
	task := fmt.Sprintf(`[data-testid="callback-row"][data-task-id=%q]`, "cb-"+gone.ID())
	must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`(e => !!e && e.dataset.state === "open" && e.textContent.includes("Gone Caller") && e.textContent.includes("Sales"))(document.querySelector(%q))`, task), bstep))
	clickIn(t, ctx, task+` [data-testid="callback-claim"]`)
	must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`(e => !!e && e.dataset.state === "claimed")(document.querySelector(%q))`, task), bstep))
	must(t, browsertest.WaitTrue(sup, fmt.Sprintf(`!!document.querySelector(%q)`, task), bstep))
	must(t, browsertest.Screenshot(ctx, "agent-callbacks"))
}
