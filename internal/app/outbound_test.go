package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/metasim"
)

// permissionFor waits for a pushed or answered permission message for to.
func permissionFor(t *testing.T, ctx context.Context, ag *agentclient.Client, to string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	for {
		m, err := ag.WaitType(ctx, "permission", "")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			To         string         `json:"to"`
			Permission map[string]any `json:"permission"`
		}
		if err := json.Unmarshal(m.Raw, &body); err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(body.To, "+") == strings.TrimPrefix(to, "+") && ok(body.Permission) {
			return body.Permission
		}
	}
}

func TestOutboundCallWithPermissionAndBilling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t)
	const user = "+447700900200"
	ta.Sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), Name: "Dana"})
	ag := ta.agent(t, ctx, "olga")

	// Without permission the call is refused locally, before Meta.
	if err := ag.Send(map[string]any{"type": "dial", "to": user, "ref": "d1"}); err != nil {
		t.Fatal(err)
	}
	if m, err := ag.WaitType(ctx, "error", ""); err != nil || m.Code != "no_permission" || m.Ref != "d1" {
		t.Fatalf("dial without permission: %v %+v", err, m)
	}
	for _, r := range ta.Sim.Requests() {
		if r.Action == "connect" {
			t.Fatal("connect sent without permission")
		}
	}

	// Ask for permission; the simulated user accepts; the grant is pushed.
	if err := ag.Send(map[string]any{"type": "permission_request", "to": user, "ref": "p1"}); err != nil {
		t.Fatal(err)
	}
	st := permissionFor(t, ctx, ag, user, func(p map[string]any) bool { return p["status"] == "temporary" })
	if st["can_call"] != true {
		t.Fatalf("after accept: %+v", st)
	}
	// A second request inside 24 h is refused with when it frees up.
	if err := ag.Send(map[string]any{"type": "permission_request", "to": user, "ref": "p2"}); err != nil {
		t.Fatal(err)
	}
	if m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "p2" }); err != nil || m.Code != "request_limit_24h" {
		t.Fatalf("second request: %v %+v", err, m)
	}

	// Dial: connect with our offer; the user answers; audio both ways.
	if err := ag.Send(map[string]any{"type": "dial", "to": user, "ref": "d2"}); err != nil {
		t.Fatal(err)
	}
	m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "d2" })
	if err != nil || m.Type != "call" {
		t.Fatalf("dial: %v %+v", err, m)
	}
	id := m.Call.ID
	if err := ag.AnswerOffer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Wait(ctx, func(m agentclient.Msg) bool {
		return m.Type == "call" && m.Call != nil && m.Call.ID == id && m.Call.State == "connected"
	}); err != nil {
		t.Fatal(err)
	}
	uc, ok := ta.Sim.OutboundCall(id)
	if !ok {
		t.Fatal("simulator has no such outbound call")
	}
	con, _ := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "connect" })
	if con.SDPType != "offer" || con.Status != 200 {
		t.Fatalf("connect %+v", con)
	}
	waitFor(t, ctx, "audio both ways", func() bool { return len(ag.Received(id)) > 75 && uc.ReceivedCount() > 75 })
	checkTone(t, "agent", ag.Received(id), 440)
	checkTone(t, "user", uc.Received(), 1000)
	time.Sleep(1500 * time.Millisecond) // let the call last a little longer than 2 s (duration, not an assertion on time)

	if err := ag.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", id); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, id)
	if e.Direction != call.BusinessInitiated || e.Outcome != call.Answered || e.Country != "GB" || e.Agent != "olga" {
		t.Fatalf("entry %+v", e)
	}
	// Billed from Meta's end_time - start_time (else its duration) in 6 s pulses, rounded up.
	if e.MetaDuration < 2 || !e.DurationFromMeta() ||
		e.BilledSeconds != (e.DurationSeconds+5)/6*6 {
		t.Fatalf("duration: meta %d used %d billed %d source %s", e.MetaDuration, e.DurationSeconds, e.BilledSeconds, e.DurationSource)
	}
	// Sample card: GB 22,000 micro-USD per minute, cost rounded up.
	if want := (e.BilledSeconds*22000 + 59) / 60; e.CostMicros != want {
		t.Fatalf("cost %d, want %d", e.CostMicros, want)
	}

	// The usage report (REST, JSON and CSV) shows it.
	sup, _ := ta.AgentToken("sup", "supervisor", time.Hour)
	month := e.EndedAt.UTC().Format("2006-01")
	var rep billing.UsageReport
	getJSON(t, ta, "/api/v1/usage?month="+month, sup, &rep)
	var gb *billing.CountryUsage
	for i := range rep.Countries {
		if rep.Countries[i].Country == "GB" {
			gb = &rep.Countries[i]
		}
	}
	if gb == nil || gb.Calls != 1 || gb.BilledSeconds != e.BilledSeconds || gb.CostMicros != e.CostMicros {
		t.Fatalf("usage %+v", rep)
	}
	// The permission request went through the per-message meter (pending
	// until a status webhook with pricing settles it) and its outcome is counted.
	if n := rep.Totals.MessagesPending + rep.Totals.MessagesBillable + rep.Totals.MessagesFree; n != 1 {
		t.Fatalf("messages %+v (totals %+v), want the permission request", rep.Messages, rep.Totals)
	}
	var pr struct {
		PermissionRequests map[string]int64 `json:"permission_requests"`
	}
	getJSON(t, ta, "/api/v1/usage?month="+month, sup, &pr)
	if pr.PermissionRequests["sent"] != 1 || pr.PermissionRequests["accepted"] != 1 {
		t.Fatalf("permission outcomes %+v", pr.PermissionRequests)
	}
	csv := get(t, ta, "/api/v1/usage?month="+month+"&format=csv", sup)
	if !strings.Contains(csv, "GB") || !strings.Contains(csv, fmt.Sprint(e.BilledSeconds)) {
		t.Fatalf("usage csv: %s", csv)
	}
	// Call log: the agent sees its call (numbers in full: this app runs with
	// masking off; TestCallLogMasksNumbers covers masking).
	tok, _ := ta.AgentToken("olga", "agent", time.Hour)
	var log struct {
		Calls []billing.Entry `json:"calls"`
	}
	getJSON(t, ta, "/api/v1/calls?direction=business_initiated", tok, &log)
	if len(log.Calls) != 1 || log.Calls[0].ID != call.ID(id) || log.Calls[0].UserPhone != user {
		t.Fatalf("call log %+v", log.Calls)
	}
}

func TestOutboundMetaRefusalCorrectsLocalState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t)
	const user = "+447700900201"
	ag := ta.agent(t, ctx, "petra")
	if err := ag.Send(map[string]any{"type": "permission_request", "to": user}); err != nil {
		t.Fatal(err)
	}
	permissionFor(t, ctx, ag, user, func(p map[string]any) bool { return p["status"] == "temporary" })
	// Meta drops the permission and the webhook that would say so is lost:
	// Meta's live call_permissions, read before dialing, says no permission;
	// Meta wins over our model, nothing is sent to Meta's calls endpoint.
	if err := ta.Sim.DropPermission(user); err != nil {
		t.Fatal(err)
	}
	connects := countRequests(ta, func(r metasim.GraphRequest) bool { return r.Action == "connect" })
	before := metricValue(t, ta, `callgw_permission_disagreements_total{op="call"}`)
	if err := ag.Send(map[string]any{"type": "dial", "to": user, "ref": "x"}); err != nil {
		t.Fatal(err)
	}
	m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "x" })
	if err != nil || m.Type != "error" || m.Code != "no_permission" || !strings.Contains(strings.ToLower(m.Message), "permission") {
		t.Fatalf("dial: %v %+v", err, m)
	}
	if n := countRequests(ta, func(r metasim.GraphRequest) bool { return r.Action == "connect" }); n != connects {
		t.Fatal("connect sent although Meta says there is no permission")
	}
	if after := metricValue(t, ta, `callgw_permission_disagreements_total{op="call"}`); after != before+1 {
		t.Fatalf("disagreements %v -> %v", before, after)
	}
	// Local state corrected: no permission any more, and the REST API says so.
	tok, _ := ta.AgentToken("petra", "agent", time.Hour)
	var d map[string]any
	getJSON(t, ta, "/api/v1/permissions/"+user, tok, &d)
	if d["status"] != "no_permission" || d["can_call"] != false {
		t.Fatalf("after 138006: %+v", d)
	}
}

func TestRESTAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t, "-api-keys", "0123456789abcdef0123:admin")
	_ = ctx
	agentTok, _ := ta.AgentToken("rest-agent", "agent", time.Hour)
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
		code                            string
	}{
		{"no auth", "GET", "/api/v1/permissions/+447700900300", "", "", 401, "unauthenticated"},
		{"bad key", "GET", "/api/v1/permissions/+447700900300", "nope-nope-nope-nope", "", 401, "unauthenticated"},
		{"state", "GET", "/api/v1/permissions/447700900300", "0123456789abcdef0123", "", 200, ""},
		{"invalid number", "GET", "/api/v1/permissions/12", "0123456789abcdef0123", "", 400, "invalid_number"},
		{"call invalid number", "POST", "/api/v1/calls", "0123456789abcdef0123", `{"to":"abc","agent":"x"}`, 400, "invalid_number"},
		{"call no permission", "POST", "/api/v1/calls", "0123456789abcdef0123", `{"to":"+447700900300","agent":"x"}`, 409, "no_permission"},
		{"bad json", "POST", "/api/v1/permission-requests", "0123456789abcdef0123", `{"to":`, 400, "bad_request"},
		{"agent token may not see usage", "GET", "/api/v1/usage", agentTok, "", 403, "forbidden"},
		{"usage bad month", "GET", "/api/v1/usage?month=2026-13", "0123456789abcdef0123", "", 400, "bad_request"},
		{"request", "POST", "/api/v1/permission-requests", "0123456789abcdef0123", `{"to":"+447700900300"}`, 202, ""},
		{"request again", "POST", "/api/v1/permission-requests", "0123456789abcdef0123", `{"to":"447700900300"}`, 409, "request_limit_24h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ta.URL+tc.path, strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, b)
			}
			if tc.code != "" && !bytes.Contains(b, []byte(`"code":"`+tc.code+`"`)) {
				t.Fatalf("body %s lacks code %s", b, tc.code)
			}
		})
	}
}

func get(t *testing.T, ta *testApp, path, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ta.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func getJSON(t *testing.T, ta *testApp, path, token string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, ta, path, token)), v); err != nil {
		t.Fatal(err)
	}
}

func TestCallLogMasksNumbers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t, "-mask-numbers=true", "-api-keys", "admin-key-0123456789")
	ag := ta.agent(t, ctx, "mia")
	uc := connectCall(t, ctx, ta, ag, "+447700900141")
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, ctx, ta, uc.ID())
	tok, _ := ta.AgentToken("mia", "agent", time.Hour)
	for _, tc := range []struct {
		name, token, wantPhone, wantName string
	}{
		{"agent sees masked", tok, "+44*******141", ""},
		{"admin sees full", "admin-key-0123456789", "+447700900141", "Alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log struct {
				Calls []billing.Entry `json:"calls"`
			}
			getJSON(t, ta, "/api/v1/calls", tc.token, &log)
			if len(log.Calls) != 1 || log.Calls[0].UserPhone != tc.wantPhone || log.Calls[0].UserName != tc.wantName {
				t.Fatalf("call log %+v", log.Calls)
			}
			csv := get(t, ta, "/api/v1/calls?format=csv", tc.token)
			if !strings.Contains(csv, tc.wantPhone) {
				t.Fatalf("csv %s", csv)
			}
		})
	}
}

// An agent calls back a missed caller whose number it never saw: the
// messages name the missed call, the server looks the number up, and the
// agent only ever sees the masked number.
func TestCallBackMaskedCaller(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t, "-mask-numbers=true", "-ring-timeout", "1s")
	ag := ta.agent(t, ctx, "carl")
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900160", Name: "Mo"})
	if err != nil {
		t.Fatal(err)
	}
	off, err := ag.WaitType(ctx, "call_offered", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if off.Call.From != "+44*******160" {
		t.Fatalf("offered from %q", off.Call.From)
	}
	if m, err := ag.WaitType(ctx, "call_ended", uc.ID()); err != nil || m.Outcome != "missed" {
		t.Fatalf("missed: %v %+v", err, m)
	}
	if err := ag.Send(map[string]any{"type": "permission_request", "call_id": uc.ID(), "ref": "r"}); err != nil {
		t.Fatal(err)
	}
	m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "r" })
	if err != nil || m.Type != "permission" || m.To != "+44*******160" {
		t.Fatalf("request by call id: %v %+v", err, m)
	}
	// The user's grant is pushed in the masked form this agent knows.
	permissionFor(t, ctx, ag, "+44*******160", func(p map[string]any) bool { return p["status"] == "temporary" })
	if err := ag.Send(map[string]any{"type": "dial", "call_id": uc.ID(), "ref": "d"}); err != nil {
		t.Fatal(err)
	}
	m, err = ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "d" })
	if err != nil || m.Type != "call" || strings.Contains(m.Call.To, "7700900160") {
		t.Fatalf("dial by call id: %v %+v", err, m)
	}
	con, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "connect" })
	if err != nil || con.To != "447700900160" {
		t.Fatalf("connect to %q: %v", con.To, err)
	}
	// Unknown call ids are refused clearly.
	_ = ag.Send(map[string]any{"type": "dial", "call_id": "wacid.never", "ref": "u"})
	if m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "u" }); err != nil || m.Code != "unknown_call" {
		t.Fatalf("unknown call: %v %+v", err, m)
	}
}
