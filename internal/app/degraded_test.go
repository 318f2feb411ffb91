package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/metasim"
)

// metricValue reads one series from /metrics (0 when absent).
func metricValue(t *testing.T, ta *testApp, series string) float64 {
	t.Helper()
	resp, err := http.Get(ta.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func countRequests(ta *testApp, match func(metasim.GraphRequest) bool) int {
	n := 0
	for _, r := range ta.Sim.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

func isPermissionRequest(r metasim.GraphRequest) bool { return r.Edge == "messages" }

const degradedSeries = "callgw_permission_degraded_decisions_total"

// TestDegradedPermissionsWhileRedisIsDown: with Redis gone, permission
// requests fail closed (nothing reaches Meta) while a dial to a user who has
// permission at Meta is decided by Meta's call_permissions.
func TestDegradedPermissionsWhileRedisIsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const adminKey = "0123456789abcdef-degraded"
	ta := startApp(t, "-api-keys", adminKey+":admin")
	const granted, stranger = "+447700900400", "+447700900401"
	ta.Sim.SetUser(granted, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg")})
	ag := ta.agent(t, ctx, "dora")

	// While Redis is up: the user grants permission (Meta and callgw agree).
	if err := ag.Send(map[string]any{"type": "permission_request", "to": granted, "ref": "p0"}); err != nil {
		t.Fatal(err)
	}
	permissionFor(t, ctx, ag, granted, func(p map[string]any) bool { return p["status"] == "temporary" })

	ta.redis.Stop()
	sentBefore := countRequests(ta, isPermissionRequest)
	degradedBefore := metricValue(t, ta, degradedSeries)

	t.Run("REST permission request fails closed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, ta.URL+"/api/v1/permission-requests", strings.NewReader(`{"to":"`+stranger+`"}`))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
			Permission map[string]any `json:"permission"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "unavailable" ||
			!strings.Contains(body.Error.Message, "try again") || body.Permission["allowed"] != false {
			t.Fatalf("status %d body %s", resp.StatusCode, b)
		}
	})
	t.Run("websocket permission request fails closed", func(t *testing.T) {
		if err := ag.Send(map[string]any{"type": "permission_request", "to": stranger, "ref": "p1"}); err != nil {
			t.Fatal(err)
		}
		m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "p1" })
		if err != nil || m.Type != "error" || m.Code != "unavailable" {
			t.Fatalf("%v %+v", err, m)
		}
	})
	t.Run("nothing was sent to Meta", func(t *testing.T) {
		if n := countRequests(ta, isPermissionRequest); n != sentBefore {
			t.Fatalf("%d permission requests reached Meta while Redis was down", n-sentBefore)
		}
	})
	t.Run("REST permission state answers from Meta", func(t *testing.T) {
		var d map[string]any
		getJSON(t, ta, "/api/v1/permissions/"+strings.TrimPrefix(granted, "+"), adminKey, &d)
		if d["degraded"] != true || d["status"] != "temporary" || d["can_call"] != true {
			t.Fatalf("state %+v", d)
		}
	})
	t.Run("dial without permission at Meta is refused by Meta's answer", func(t *testing.T) {
		connects := countRequests(ta, func(r metasim.GraphRequest) bool { return r.Action == "connect" })
		if err := ag.Send(map[string]any{"type": "dial", "to": stranger, "ref": "d0"}); err != nil {
			t.Fatal(err)
		}
		m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "d0" })
		if err != nil || m.Type != "error" || m.Code != "no_permission" {
			t.Fatalf("%v %+v", err, m)
		}
		if n := countRequests(ta, func(r metasim.GraphRequest) bool { return r.Action == "connect" }); n != connects {
			t.Fatal("connect sent for a user without permission")
		}
	})
	t.Run("dial with permission at Meta falls back to call_permissions", func(t *testing.T) {
		if err := ag.Send(map[string]any{"type": "dial", "to": granted, "ref": "d1"}); err != nil {
			t.Fatal(err)
		}
		m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "d1" })
		if err != nil || m.Type != "call" || m.Call == nil || m.Call.State != "dialing" {
			t.Fatalf("dial: %v %+v", err, m)
		}
		digits := strings.TrimPrefix(granted, "+")
		if _, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool {
			return r.Edge == "call_permissions" && r.To == digits && r.Status == 200
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool {
			return r.Action == "connect" && r.To == digits && r.Status == 200
		}); err != nil {
			t.Fatal(err)
		}
		// What happens next (Redis still down): the user answers at Meta, but
		// the connect webhook carrying the answer cannot be recorded and gets
		// 503 on every attempt, so the call never connects on our side. The
		// agent never completed its leg either, so the call ends (agent leg
		// lost after the grace period) and the agent is told.
		id := m.Call.ID
		waitFor(t, ctx, "Meta to give up on the answer webhook", func() bool {
			for _, w := range ta.Sim.Webhooks() {
				if bytes.Contains(w.Body, []byte(id)) && bytes.Contains(w.Body, []byte(`"event":"connect"`)) {
					if w.Status != http.StatusServiceUnavailable {
						t.Fatalf("answer webhook while Redis is down: %d", w.Status)
					}
					return true
				}
			}
			return false
		})
		end, err := ag.WaitType(ctx, "call_ended", id)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("dialled call ended while Redis was down: reason %s outcome %s", end.Reason, end.Outcome)
		if end.Outcome == "answered" {
			t.Fatalf("a call whose answer was never recorded ended as answered: %+v", end)
		}
		// Three degraded decisions at least: the REST state, this dial and
		// the refused dial. (The two requests fail closed earlier now: the
		// customer-window check that picks free-form or template needs Redis.)
		if after := metricValue(t, ta, degradedSeries); after < degradedBefore+3 {
			t.Fatalf("%s went %v -> %v", degradedSeries, degradedBefore, after)
		}
	})
}

// TestDegradedWebhookAsksMetaToRetry: a connect delivered while Redis is
// down gets 503 and changes nothing; once Redis is back the same delivery
// gets 200 and the call rings.
func TestDegradedWebhookAsksMetaToRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agent(t, ctx, "wendy")

	ta.redis.Stop()
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900410", Name: "Rita", Audio: oggBytes(t, "caller-440.ogg")})
	if err != nil {
		t.Fatal(err)
	}
	// The simulator delivers the connect and retries it with backoff; it
	// records the delivery after its last attempt.
	var wh metasim.SentWebhook
	waitFor(t, ctx, "the simulator to give up on the connect", func() bool {
		for _, w := range ta.Sim.Webhooks() {
			if bytes.Contains(w.Body, []byte(uc.ID())) && bytes.Contains(w.Body, []byte(`"event":"connect"`)) {
				wh = w
				return true
			}
		}
		return false
	})
	if wh.Status != http.StatusServiceUnavailable || wh.Attempts < 2 {
		t.Fatalf("delivery while Redis is down: status %d after %d attempts", wh.Status, wh.Attempts)
	}
	// Delivered again by hand, still down: 503, and nothing rang.
	if st := postWebhook(t, ta, wh.Body, ta.Sim.Sign(wh.Body)); st != http.StatusServiceUnavailable {
		t.Fatalf("redelivery while down: %d", st)
	}
	if n := len(ta.Ctrl.Live()); n != 0 {
		t.Fatalf("%d live calls from an unrecorded webhook", n)
	}
	if ag.Has(func(m agentclient.Msg) bool { return m.Type == "call_offered" }) {
		t.Fatal("a call rang although its webhook got 503")
	}
	if countRequests(ta, func(r metasim.GraphRequest) bool { return r.CallID == uc.ID() }) != 0 {
		t.Fatal("callgw talked to Meta about a call it did not record")
	}

	ta.redis.Restart()
	waitFor(t, ctx, "readyz after the Redis restart", func() bool {
		resp, err := http.Get(ta.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if st := postWebhook(t, ta, wh.Body, ta.Sim.Sign(wh.Body)); st != http.StatusOK {
		t.Fatalf("redelivery after the restart: %d", st)
	}
	off, err := ag.WaitType(ctx, "call_offered", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if off.Call.Name != "Rita" {
		t.Fatalf("offered %+v", off.Call)
	}
	// And it is a working call.
	if err := ag.Accept(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := ag.WaitConnected(ctx, uc.ID()); err != nil {
		t.Fatal(err)
	}
	if err := uc.WaitState(ctx, metasim.Accepted); err != nil {
		t.Fatal(err)
	}
	// A duplicate of the same delivery is acknowledged and changes nothing.
	if st := postWebhook(t, ta, wh.Body, ta.Sim.Sign(wh.Body)); st != http.StatusOK {
		t.Fatalf("duplicate: %d", st)
	}
	if n := len(ta.Ctrl.Live()); n != 1 {
		t.Fatalf("%d live calls", n)
	}
}
