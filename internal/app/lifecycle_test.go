package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/metasim"
)

// The end-to-end tests of issue-level behaviour on the faithful simulator:
// Meta's business-initiated lifecycle (connect before pickup, ACCEPTED,
// REJECTED, no answer), users known only by a BSUID, permission requests
// inside and outside the customer service window, and webhooks for numbers
// we do not serve or with broken items.

// grantByRequest has agent ask user for permission and waits for the grant.
func grantByRequest(t *testing.T, ctx context.Context, ag *agentclient.Client, user, ref string) {
	t.Helper()
	if err := ag.Send(map[string]any{"type": "permission_request", "to": user, "ref": ref}); err != nil {
		t.Fatal(err)
	}
	permissionFor(t, ctx, ag, user, func(p map[string]any) bool { return p["status"] == "temporary" })
}

// dialAndLeg places a call and completes the agent leg.
func dialAndLeg(t *testing.T, ctx context.Context, ag *agentclient.Client, user, ref string) string {
	t.Helper()
	if err := ag.Send(map[string]any{"type": "dial", "to": user, "ref": ref}); err != nil {
		t.Fatal(err)
	}
	m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == ref })
	if err != nil || m.Type != "call" || m.Call == nil {
		t.Fatalf("dial %s: %v %+v", user, err, m)
	}
	if err := ag.AnswerOffer(ctx, m.Call.ID); err != nil {
		t.Fatal(err)
	}
	return m.Call.ID
}

// userWrote has the user write to the business through the simulator and
// waits until the gateway took the webhook (the window is open then).
func userWrote(t *testing.T, ctx context.Context, ta *testApp, user, text string) {
	t.Helper()
	wamid, err := ta.Sim.SendUserMessage("", user, text)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Sim.WaitWebhook(ctx, func(w metasim.SentWebhook) bool {
		return w.Status == 200 && strings.Contains(string(w.Body), wamid)
	}); err != nil {
		t.Fatal(err)
	}
}

// waitAnswered waits until the agent is told the call is connected
// (answered on WhatsApp).
func waitAnswered(t *testing.T, ctx context.Context, ag *agentclient.Client, id string) {
	t.Helper()
	if _, err := ag.Wait(ctx, func(m agentclient.Msg) bool {
		return m.Type == "call" && m.Call != nil && m.Call.ID == id && m.Call.State == "connected"
	}); err != nil {
		t.Fatal(err)
	}
}

func permissionState(t *testing.T, ta *testApp, user string) map[string]any {
	t.Helper()
	tok, _ := ta.AgentToken("sup", "supervisor", time.Hour)
	var d map[string]any
	getJSON(t, ta, "/api/v1/permissions/"+user, tok, &d)
	return d
}

func lastMessageRequest(ta *testApp, match func(metasim.GraphRequest) bool) (metasim.GraphRequest, bool) {
	reqs := ta.Sim.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Edge == "messages" && match(reqs[i]) {
			return reqs[i], true
		}
	}
	return metasim.GraphRequest{}, false
}

// An outbound call that is never picked up bills 0 and counts in the
// unanswered streak; a declined one too. Meta's connect webhook (its SDP
// answer, before pickup) never makes a call answered.
func TestOutboundUnansweredAndDeclined(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-ring-ceiling", "4s")
	const silent, decliner = "+447700900310", "+447700900311"
	ta.Sim.SetUser(silent, metasim.UserBehavior{Answer: metasim.NoAnswer})
	ta.Sim.SetUser(decliner, metasim.UserBehavior{Answer: metasim.Decline, AnswerAfter: time.Second})
	ag := ta.agent(t, ctx, "uma")

	// Outside the 24 h window the request is the approved template.
	grantByRequest(t, ctx, ag, silent, "p1")
	if r, ok := lastMessageRequest(ta, func(r metasim.GraphRequest) bool { return r.To == strings.TrimPrefix(silent, "+") }); !ok || r.Action != "template" {
		t.Fatalf("request outside the window: %+v", r)
	}
	// Inside it (the user wrote to us), the free-form interactive message.
	userWrote(t, ctx, ta, decliner, "hello, call me")
	grantByRequest(t, ctx, ag, decliner, "p2")
	if r, ok := lastMessageRequest(ta, func(r metasim.GraphRequest) bool { return r.To == strings.TrimPrefix(decliner, "+") }); !ok || !strings.Contains(r.Action, "call_permission_request") {
		t.Fatalf("request inside the window: %+v", r)
	}

	for _, tc := range []struct {
		user, ref string
		outcome   call.Outcome
		reason    call.EndReason
	}{
		{silent, "d1", call.Unanswered, call.UserNoAnswer},
		{decliner, "d2", call.Declined, call.UserDeclined},
	} {
		id := dialAndLeg(t, ctx, ag, tc.user, tc.ref)
		// Meta's answer comes before pickup: the call stays dialing.
		end, err := ag.WaitType(ctx, "call_ended", id)
		if err != nil {
			t.Fatal(err)
		}
		if ag.Has(func(m agentclient.Msg) bool {
			return m.Type == "call" && m.Call != nil && m.Call.ID == id && m.Call.State == "connected"
		}) {
			t.Fatalf("%s: an unanswered call was shown connected", tc.user)
		}
		e := waitEntry(t, ctx, ta, id)
		if e.Outcome != tc.outcome || e.EndReason != tc.reason || e.BilledSeconds != 0 || e.CostMicros != 0 || !e.AnsweredAt.IsZero() {
			t.Fatalf("%s: ended %+v, entry %+v", tc.user, end, e)
		}
		if d := permissionState(t, ta, tc.user); d["unanswered_streak"] != float64(1) {
			t.Fatalf("%s: streak %v", tc.user, d["unanswered_streak"])
		}
	}
}

// A user with a username (no phone number in any webhook, only a BSUID)
// calls in, is answered, grants permission and is called back: Graph
// connect carries `recipient`, billing prices the BSUID's country.
func TestBSUIDUserCallsInGrantsAndIsCalledBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t)
	const bsuid = "GB.90817263544536271809"
	if err := ta.Sim.AddUser(bsuid, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), Username: "dana.b", AnswerAfter: time.Second}); err != nil {
		t.Fatal(err)
	}
	ag := ta.agent(t, ctx, "vera")
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{FromUserID: bsuid, Audio: oggBytes(t, "caller-440.ogg")})
	if err != nil {
		t.Fatal(err)
	}
	off, err := ag.WaitType(ctx, "call_offered", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if off.Call.From != bsuid {
		t.Fatalf("offered from %q", off.Call.From)
	}
	if err := ag.Accept(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := uc.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatal(err)
	}
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", uc.ID()); err != nil {
		t.Fatal(err)
	}
	in := waitEntry(t, ctx, ta, uc.ID())
	if in.UserID != bsuid || in.UserPhone != "" || in.Outcome != call.Answered {
		t.Fatalf("inbound entry %+v", in)
	}

	// The call opened the window: the request is free-form, to the BSUID.
	grantByRequest(t, ctx, ag, bsuid, "p")
	r, ok := lastMessageRequest(ta, func(r metasim.GraphRequest) bool { return r.Recipient == bsuid })
	if !ok || r.To != "" || !strings.Contains(r.Action, "call_permission_request") {
		t.Fatalf("request to a BSUID: %+v", r)
	}
	id := dialAndLeg(t, ctx, ag, bsuid, "d")
	con, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "connect" })
	if err != nil || con.Recipient != bsuid || con.To != "" || con.Status != 200 {
		t.Fatalf("connect %+v %v", con, err)
	}
	// biz_opaque_callback_data carries the dial and the agent; Meta echoes
	// it in statuses and terminate, and the echo is checked.
	if !strings.Contains(string(con.Body), `"biz_opaque_callback_data":"callgw:1:`) || !strings.Contains(string(con.Body), ":vera\"") {
		t.Fatalf("connect body %s", con.Body)
	}
	waitAnswered(t, ctx, ag, id)
	ouc, ok := ta.Sim.OutboundCall(id)
	if !ok {
		t.Fatal("the simulator has no such call")
	}
	// Two seconds of talk after pickup (Meta's times are whole seconds).
	n0, m0 := len(ag.Received(id)), ouc.ReceivedCount()
	waitFor(t, ctx, "audio both ways", func() bool { return len(ag.Received(id)) > n0+100 && ouc.ReceivedCount() > m0+100 })
	checkTone(t, "agent", ag.Received(id), 440)
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	out := waitEntry(t, ctx, ta, id)
	if out.Outcome != call.Answered || out.Country != "GB" || out.UserID != bsuid || !out.DurationFromMeta() {
		t.Fatalf("outbound entry %+v", out)
	}
	if out.BilledSeconds%6 != 0 || out.BilledSeconds == 0 {
		t.Fatalf("billed %d s: Meta bills 6-second pulses", out.BilledSeconds)
	}
	if v := metricValue(t, ta, "callgw_opaque_mismatches_total"); v != 0 {
		t.Fatalf("%v echoes of biz_opaque_callback_data differed", v)
	}
}

// One POST with a change for a number we do not serve, a broken item and
// a valid user message: 200, the foreign call changes nothing, the broken
// item is skipped, the message is applied (it opens the window).
func TestWebhookBatchForeignNumberAndBrokenItem(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "will")
	pnid := ta.Cfg.PhoneNumberID
	const user = "447700900330"
	now := time.Now().Unix()
	body := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[
 {"id":"999000","changes":[{"field":"calls","value":{"messaging_product":"whatsapp",
   "metadata":{"display_phone_number":"15559990000","phone_number_id":"999999999"},
   "calls":[{"id":"wacid.FOREIGN1","from":"447700900331","to":"15559990000","event":"connect","timestamp":"%d",
     "direction":"USER_INITIATED","session":{"sdp_type":"offer","sdp":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}}]}}]},
 {"id":"200000000000002","changes":[
   {"field":"calls","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"%s"},
     "calls":[{"id":"wacid.BROKEN1","event":"connect","timestamp":{"not":"a time"}}]}},
   {"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"%s"},
     "contacts":[{"profile":{"name":"Xena"},"wa_id":"%s","user_id":"GB.5550001"}],
     "messages":[{"from":"%s","from_user_id":"GB.5550001","id":"wamid.IN1","timestamp":"%d","type":"text","text":{"body":"hi"}}]}}]}]}`,
		now, pnid, pnid, user, user, now))
	if st := postWebhook(t, ta, body, ta.Sim.Sign(body)); st != 200 {
		t.Fatalf("batch: %d", st)
	}
	if n := len(ta.Ctrl.Live()); n != 0 {
		t.Fatalf("%d live calls after a foreign and a broken connect", n)
	}
	for _, r := range ta.Sim.Requests() {
		if r.CallID == "wacid.FOREIGN1" || r.CallID == "wacid.BROKEN1" {
			t.Fatalf("acted on %s: %+v", r.CallID, r)
		}
	}
	if v := metricValue(t, ta, `callgw_webhooks_total{event="foreign_number",result="ignored"}`); v != 1 {
		t.Fatalf("foreign events counted %v", v)
	}
	if v := metricValue(t, ta, `callgw_webhooks_total{event="item",result="malformed"}`); v != 1 {
		t.Fatalf("broken items counted %v", v)
	}
	// The valid message opened the window at the gateway: the request goes
	// free-form. (The simulator never saw that forged message, so Meta
	// refuses it outside its own window; what matters is what we sent.)
	if err := ag.Send(map[string]any{"type": "permission_request", "to": "+" + user, "ref": "p"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "p" }); err != nil {
		t.Fatal(err)
	}
	if r, ok := lastMessageRequest(ta, func(r metasim.GraphRequest) bool { return r.To == user || r.Recipient == "GB.5550001" }); !ok || !strings.Contains(r.Action, "call_permission_request") {
		t.Fatalf("request after the user's message: %+v", r)
	}
}

// A permission request Meta cannot deliver (status failed) is undone: it
// does not count against the user's limits, and the agent is told why. A
// delivered one is charged once from Meta's pricing, replays or not.
func TestPermissionRequestFailedIsUndoneAndDeliveredIsCharged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	const oldClient, fine = "+447700900340", "+447700900341"
	ta.Sim.SetUser(oldClient, metasim.UserBehavior{MessageFailCode: 131026})
	ag := ta.agent(t, ctx, "xavi")
	if err := ag.Send(map[string]any{"type": "permission_request", "to": oldClient, "ref": "f"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "f" }); err != nil {
		t.Fatal(err)
	}
	m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Type == "error" && m.MetaCode == 131026 })
	if err != nil {
		t.Fatal(err)
	}
	if m.Code != "meta_error" || m.Message == "" {
		t.Fatalf("failure pushed as %+v", m)
	}
	waitFor(t, ctx, "the failed request to be undone", func() bool {
		d := permissionState(t, ta, oldClient)
		return d["requests_left_24h"] == float64(1) && d["requests_left_7d"] == float64(2)
	})

	grantByRequest(t, ctx, ag, fine, "ok")
	sup, _ := ta.AgentToken("sup", "supervisor", time.Hour)
	month := time.Now().UTC().Format("2006-01")
	var rep billing.UsageReport
	waitFor(t, ctx, "the delivered request to be charged", func() bool {
		getJSON(t, ta, "/api/v1/usage?month="+month, sup, &rep)
		b, _ := json.Marshal(rep)
		return strings.Contains(string(b), `"billable"`) && rep.Messages != nil && messageCost(rep) > 0
	})
	cost := messageCost(rep)
	// Replay every message status webhook Meta sent: nothing more is charged.
	for _, w := range ta.Sim.Webhooks() {
		if strings.Contains(string(w.Body), `"statuses"`) && strings.Contains(string(w.Body), `"pricing"`) {
			if st := postWebhook(t, ta, w.Body, ta.Sim.Sign(w.Body)); st != 200 {
				t.Fatalf("replay: %d", st)
			}
		}
	}
	getJSON(t, ta, "/api/v1/usage?month="+month, sup, &rep)
	if got := messageCost(rep); got != cost {
		t.Fatalf("replayed statuses charged again: %d -> %d", cost, got)
	}
}

func messageCost(rep billing.UsageReport) int64 {
	var n int64
	for _, m := range rep.Messages {
		n += m.CostMicros
	}
	return n
}

// The whole outbound and inbound flow with every adversarial behaviour of
// the simulator on: batches, reordering, duplicates, retries, hidden
// numbers, type drift, errors in both places.
func TestAdversarialMetaEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t)
	if err := ta.Sim.SetAdversary(metasim.AdversaryAll()); err != nil {
		t.Fatal(err)
	}
	ag := ta.agent(t, ctx, "yara")
	uc := connectCall(t, ctx, ta, ag, "+447700900350")
	waitFor(t, ctx, "audio both ways", func() bool { return len(ag.Received(uc.ID())) > 50 && uc.ReceivedCount() > 50 })
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", uc.ID()); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.Outcome != call.Answered || e.Direction != call.UserInitiated {
		t.Fatalf("inbound entry under adversity %+v", e)
	}
}

// Call buttons go out only inside the user's window (as Meta requires for
// free-form messages); the number's calling settings, read from Meta at
// start, are shown read-only.
func TestCallButtonsAndNumberSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t, "-api-keys", "0123456789abcdef0123:admin")
	const key = "0123456789abcdef0123"
	const user = "+447700900360"
	post := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ta.URL+"/api/v1/call-buttons", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := post(`{"to":"` + user + `","text":"Tap to call us"}`); st != 409 || !strings.Contains(b, "outside_window") {
		t.Fatalf("outside the window: %d %s", st, b)
	}
	if st, b := post(`{"to":"nope","text":"x"}`); st != 400 || !strings.Contains(b, "invalid_number") {
		t.Fatalf("bad number: %d %s", st, b)
	}
	userWrote(t, ctx, ta, user, "can you call me?")
	if st, b := post(`{"to":"` + user + `","text":"Tap to call us","display_text":"Call support","payload":"ticket-42"}`); st != 202 || !strings.Contains(b, "message_id") {
		t.Fatalf("inside the window: %d %s", st, b)
	}
	r, ok := lastMessageRequest(ta, func(r metasim.GraphRequest) bool { return r.To == strings.TrimPrefix(user, "+") })
	if !ok || !strings.Contains(r.Action, "voice_call") || !strings.Contains(string(r.Body), "ticket-42") {
		t.Fatalf("call button request %+v", r)
	}

	var settings map[string]any
	waitFor(t, ctx, "the number's settings read at start", func() bool {
		req, _ := http.NewRequest(http.MethodGet, ta.URL+"/api/v1/numbers/"+ta.Cfg.PhoneNumberID+"/settings", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return false
		}
		return json.NewDecoder(resp.Body).Decode(&settings) == nil
	})
	if settings["status"] != "ENABLED" {
		t.Fatalf("settings %v", settings)
	}
	req, _ := http.NewRequest(http.MethodGet, ta.URL+"/api/v1/numbers/999/settings", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("foreign number settings: %d", resp.StatusCode)
	}
}

type shiftedClock struct{ d time.Duration }

func (c shiftedClock) Now() time.Time                         { return time.Now().Add(c.d) }
func (c shiftedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Reconciliation against the simulator's analytics: Meta counts a call our
// ledger lacks; the report shows the difference for that day and market.
func TestReconciliationShowsWhatMetaCountsAndWeDoNot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t)
	const user = "+447700900370"
	ta.Sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), AnswerAfter: 300 * time.Millisecond})
	ag := ta.agent(t, ctx, "zoe")
	grantByRequest(t, ctx, ag, user, "p")
	id := dialAndLeg(t, ctx, ag, user, "d")
	out, ok := ta.Sim.OutboundCall(id)
	if !ok {
		t.Fatal("no outbound call at the simulator")
	}
	waitAnswered(t, ctx, ag, id)
	m0 := out.ReceivedCount()
	waitFor(t, ctx, "two seconds of talk after pickup", func() bool { return out.ReceivedCount() > m0+100 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, id)
	if e.CostMicros == 0 {
		t.Fatalf("entry %+v", e)
	}
	rec, err := billing.NewReconciler(ta.Ledger, billing.ReconcileConfig{Instance: "test", Days: 1,
		Clock: shiftedClock{24 * time.Hour}}) // "yesterday" is today
	if err != nil {
		t.Fatal(err)
	}
	fetch := billing.FetchFrom(analyticsFetcher{c: ta.Graph, waba: ta.Cfg.WABAID})
	r, ran, err := rec.RunOnce(ctx, fetch)
	if err != nil || !ran || r.Status != billing.ReconOK {
		t.Fatalf("truthful Meta: %+v %v %v", r, ran, err)
	}
	ta.Sim.SetAnalyticsSkew(metasim.AnalyticsSkew{ExtraCalls: 1, ExtraCostMicros: 50_000})
	if err := ta.Redis.Del(ctx, "callgw:billing:lease:reconcile").Err(); err != nil {
		t.Fatal(err)
	}
	r, ran, err = rec.RunOnce(ctx, fetch)
	if err != nil || !ran || r.Status != billing.ReconDifferences {
		t.Fatalf("Meta counts one more call: %+v %v %v", r, ran, err)
	}
	var diff int64
	for _, d := range r.Days {
		if d.Kind == billing.ReconCalls && d.Market == "GB" {
			diff = d.Difference
		}
	}
	if diff >= 0 {
		t.Fatalf("difference %d: ours should be below Meta's", diff)
	}
	if v := metricValue(t, ta, `callgw_billing_reconciliation_difference_micros{kind="calls"}`); v <= 0 {
		t.Fatalf("metric %v", v)
	}
}

// With CALLGW_CONFIG naming a second number, a call to it is answered
// through that number's own Graph client (path and token), and the call
// record names it; a number nobody configured stays foreign.
func TestSecondNumberFromConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	file := t.TempDir() + "/callgw.yaml"
	const second = "100000000000009"
	if err := os.WriteFile(file, []byte(`version: 1
teams:
  - id: all
    name: Everyone
    agents: ["*"]
numbers:
  - phone_number_id: "`+second+`"
    waba_id: "200000000000002"
    brand: Second brand
    token_env: CALLGW_TEST_SECOND_TOKEN
    teams: [all]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ta := startApp(t, "-config", file)
	ag := ta.agent(t, ctx, "quinn")
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900380", To: second, Audio: oggBytes(t, "caller-440.ogg")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_offered", uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := ag.Accept(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := uc.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"pre_accept", "accept"} {
		r, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == action && r.CallID == uc.ID() })
		if err != nil || r.PhoneNumberID != second || r.Status != 200 {
			t.Fatalf("%s went to %+v (%v), want number %s", action, r, err, second)
		}
	}
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if e := waitEntry(t, ctx, ta, uc.ID()); e.PhoneNumberID != second || e.Outcome != call.Answered {
		t.Fatalf("entry %+v", e)
	}
}

// Meta bills business-initiated calls in 6-second pulses, a begun pulse
// whole: a call that lasts 61 s is billed 66 s at the GB rate.
func TestOutboundCallBilledInSixSecondPulses(t *testing.T) {
	if testing.Short() {
		t.Skip("a 61-second call")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	ta := startApp(t)
	const user = "+447700900390"
	ta.Sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), AnswerAfter: 200 * time.Millisecond})
	ag := ta.agent(t, ctx, "pia")
	grantByRequest(t, ctx, ag, user, "p")
	id := dialAndLeg(t, ctx, ag, user, "d")
	waitAnswered(t, ctx, ag, id)
	time.Sleep(61500 * time.Millisecond) // the call's length (what is billed), not an assertion on time
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, id)
	secs := e.MetaEnd.Sub(e.MetaStart) / time.Second
	if secs < 61 || secs > 65 || !e.DurationFromMeta() {
		t.Fatalf("Meta's duration %v (entry %+v)", secs, e)
	}
	if e.BilledSeconds != 66 || e.CostMicros != 24200 || e.Country != "GB" { // 66 s × 22,000 µ$/min
		t.Fatalf("billed %d s for %d micros (%s), want 66 s for 24200", e.BilledSeconds, e.CostMicros, e.Country)
	}
}

// A permission request Meta reports free (free_customer_service inside the
// window, as before October 2026) is counted free, by its type, and costs 0.
func TestFreeMessageCountedByType(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	ta.Sim.SetPricing(metasim.Pricing{ServiceType: "free_customer_service"})
	const user = "+447700900391"
	ag := ta.agent(t, ctx, "rae")
	userWrote(t, ctx, ta, user, "call me please")
	grantByRequest(t, ctx, ag, user, "p")
	sup, _ := ta.AgentToken("sup", "supervisor", time.Hour)
	month := time.Now().UTC().Format("2006-01")
	var rep billing.UsageReport
	waitFor(t, ctx, "the free request counted", func() bool {
		getJSON(t, ta, "/api/v1/usage?month="+month, sup, &rep)
		for _, m := range rep.Messages {
			if m.Free["free_customer_service"] == 1 {
				return true
			}
		}
		return false
	})
	if c := messageCost(rep); c != 0 {
		t.Fatalf("a free message cost %d", c)
	}
}
