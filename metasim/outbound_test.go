package metasim

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func permissionRequest(to string) map[string]any {
	return map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "interactive",
		"interactive": map[string]any{"type": "call_permission_request", "body": map[string]any{"text": "May we call you?"},
			"action": map[string]any{"name": "call_permission_request"}}}
}

const messages = "/v23.0/100000000000001/messages"

func TestPermissionRequestFlow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1760681506, 0)}
	e := newEnv(t, func(c *Config) { c.Clock = clk.Now })
	e.sim.SetUser("+447700900123", UserBehavior{Permission: PermissionAccept, Name: "Alice"})
	e.sim.SetUser("+447700900200", UserBehavior{Permission: PermissionAcceptPermanent})
	e.sim.SetUser("+447700900300", UserBehavior{Permission: PermissionReject})
	for _, u := range []string{"447700900123", "447700900200", "447700900300"} {
		if _, err := e.sim.SendUserMessage("", u, "hi"); err != nil { // opens the customer service window
			t.Fatal(err)
		}
	}

	tests := []struct {
		name      string
		to        string
		response  string
		permanent bool
		status    string
	}{
		{"temporary accept", "+447700900123", "accept", false, "temporary"},
		{"permanent accept", "447700900200", "accept", true, "permanent"},
		{"reject", "447700900300", "reject", false, "no_permission"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := e.call(t, "POST", messages, testToken, permissionRequest(tt.to))
			if st != 200 {
				t.Fatalf("request = %d %v", st, body)
			}
			wamid := body["messages"].([]any)[0].(map[string]any)["id"].(string)
			c := body["contacts"].([]any)[0].(map[string]any)
			waID := strings.TrimPrefix(tt.to, "+")
			if !strings.HasPrefix(wamid, "wamid.") || c["input"] != tt.to || c["wa_id"] != waID {
				t.Fatalf("response = %v", body)
			}
			h := e.recv.wait(t, "permission reply", permissionReplyHook)
			m := h.first("messages")
			r := m["interactive"].(map[string]any)["call_permission_reply"].(map[string]any)
			if h.field() != "messages" || m["from"] != waID || r["response"] != tt.response || r["is_permanent"] != tt.permanent ||
				r["response_source"] != "user_action" || m["context"].(map[string]any)["id"] != wamid || m["type"] != nil ||
				!IsBSUID(m["from_user_id"].(string)) {
				t.Fatalf("reply = %s", h.raw)
			}
			if tt.status == "temporary" {
				want := strconv.FormatInt(clk.Now().Add(7*24*time.Hour).Unix(), 10)
				if r["expiration_timestamp"] != want {
					t.Fatalf("expiration_timestamp = %v, want %v", r["expiration_timestamp"], want)
				}
			}
			st, view := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?user_wa_id="+waID, testToken, nil)
			if st != 200 || view["permission"].(map[string]any)["status"] != tt.status {
				t.Fatalf("call_permissions = %d %v", st, view)
			}
		})
	}

	t.Run("limits", func(t *testing.T) {
		// a second request inside 24 h: 138009
		if st, body := e.call(t, "POST", messages, testToken, permissionRequest("447700900123")); st != 400 || errCode(body) != 138009 {
			t.Fatalf("second request = %d %v", st, body)
		}
		// permanent grant: 138017
		if st, body := e.call(t, "POST", messages, testToken, permissionRequest("447700900200")); st != 400 || errCode(body) != 138017 {
			t.Fatalf("request with permanent grant = %d %v", st, body)
		}
		_, view := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?user_wa_id=447700900123", testToken, nil)
		a := view["actions"].([]any)[0].(map[string]any)
		l := a["limits"].([]any)
		if a["action_name"] != "send_call_permission_request" || a["can_perform_action"] != false ||
			l[0].(map[string]any)["time_period"] != "PT24H" || l[0].(map[string]any)["current_usage"] != 1.0 ||
			l[1].(map[string]any)["time_period"] != "P7D" || l[1].(map[string]any)["max_allowed"] != 2.0 {
			t.Fatalf("actions = %v", view["actions"])
		}
		if sc := view["actions"].([]any)[1].(map[string]any); sc["action_name"] != "start_call" || sc["can_perform_action"] != true {
			t.Fatalf("start_call = %v", sc)
		}
		clk.Add(25 * time.Hour) // next day: allowed again (2nd of 7 days)
		if _, err := e.sim.SendUserMessage("", "447700900123", "hi again"); err != nil {
			t.Fatal(err)
		}
		if st, body := e.call(t, "POST", messages, testToken, permissionRequest("447700900123")); st != 200 {
			t.Fatalf("next-day request = %d %v", st, body)
		}
		e.recv.wait(t, "reply", permissionReplyHook)
		clk.Add(25 * time.Hour) // third in 7 days: refused
		if _, err := e.sim.SendUserMessage("", "447700900123", "hi again"); err != nil {
			t.Fatal(err)
		}
		if st, body := e.call(t, "POST", messages, testToken, permissionRequest("447700900123")); st != 400 || errCode(body) != 138009 {
			t.Fatalf("third request in 7 days = %d %v", st, body)
		}
	})
}

func TestCallbackPermissionOnUserCall(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CallbackPermission = true })
	uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.Hangup(ctxT(t)); err != nil { // a missed call: the prompt follows the call
		t.Fatal(err)
	}
	h := e.recv.wait(t, "callback reply", permissionReplyHook)
	m := h.first("messages")
	r := m["interactive"].(map[string]any)["call_permission_reply"].(map[string]any)
	if r["response"] != "accept" || r["response_source"] != "automatic" || m["context"].(map[string]any)["id"] != uc.ID() {
		t.Fatalf("callback reply = %s", h.raw)
	}
	_, view := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?user_wa_id=447700900123", testToken, nil)
	if view["permission"].(map[string]any)["status"] != "temporary" {
		t.Fatalf("permission = %v", view)
	}
	// from a companion device: no callback permission
	uc, err = e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900124", Companion: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.Hangup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	e.recv.wait(t, "terminate", callEventIs(uc.ID(), "terminate"))
	_, view = e.call(t, "GET", "/v23.0/100000000000001/call_permissions?user_wa_id=447700900124", testToken, nil)
	if view["permission"].(map[string]any)["status"] != "no_permission" {
		t.Fatalf("companion call granted a permission: %v", view)
	}
}

// grantByRequest gives user a temporary permission through the Graph API.
func grantByRequest(t *testing.T, e *env, user string) {
	t.Helper()
	if _, err := e.sim.SendUserMessage("", user, "hello"); err != nil { // opens the customer service window
		t.Fatal(err)
	}
	if st, body := e.call(t, "POST", messages, testToken, permissionRequest(user)); st != 200 {
		t.Fatalf("permission request = %d %v", st, body)
	}
	e.recv.wait(t, "reply", permissionReplyHook)
}

func connect(t *testing.T, e *env, to, offer string) (int, map[string]any) {
	t.Helper()
	return e.calls(t, map[string]any{"action": "connect", "to": to, "session": map[string]any{"sdp_type": "offer", "sdp": offer}})
}

func TestOutboundLimitsAndRevocation(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.RingTimeout = 100 * time.Millisecond
		c.Limits.UnansweredRevoke = 2
		c.Limits.ConnectedCallsPer24h = 1
	})
	const user, other = "447700900123", "447700900777"
	e.sim.SetUser(user, UserBehavior{Answer: NoAnswer})
	grantByRequest(t, e, user)
	for i := range 2 {
		biz := newBizPeer(t)
		st, body := connect(t, e, user, biz.offer(t))
		if st != 200 {
			t.Fatalf("call %d: connect = %d %v", i, st, body)
		}
		id := body["calls"].([]any)[0].(map[string]any)["id"].(string)
		e.recv.wait(t, "terminate", callEventIs(id, "terminate"))
	}
	h := e.recv.wait(t, "automatic revoke", permissionReplyHook)
	m := h.first("messages")
	r := m["interactive"].(map[string]any)["call_permission_reply"].(map[string]any)
	if r["response"] != "reject" || r["response_source"] != "automatic" || m["context"] != nil {
		t.Fatalf("revoke = %s", h.raw)
	}
	if st, body := connect(t, e, user, newBizPeer(t).offer(t)); st != 401 || errCode(body) != 138006 {
		t.Fatalf("connect after revoke = %d %v", st, body)
	}

	// connected-call limit (1 per 24 h): the second connect is refused with 138012
	e.sim.SetUser(other, UserBehavior{Answer: Answer, AnswerAfter: 50 * time.Millisecond})
	grantByRequest(t, e, other)
	biz := newBizPeer(t)
	st, body := connect(t, e, other, biz.offer(t))
	if st != 200 {
		t.Fatalf("connect = %d %v", st, body)
	}
	id := body["calls"].([]any)[0].(map[string]any)["id"].(string)
	if st, body := connect(t, e, other, newBizPeer(t).offer(t)); st != 400 || errCode(body) != 138003 {
		t.Fatalf("concurrent connect = %d %v", st, body)
	}
	e.recv.wait(t, "ACCEPTED", statusIs(id, "ACCEPTED"))
	e.calls(t, map[string]any{"action": "terminate", "call_id": id})
	e.recv.wait(t, "terminate", callEventIs(id, "terminate"))
	st, body = connect(t, e, other, newBizPeer(t).offer(t))
	if st != 400 || errCode(body) != 138012 || !strings.Contains(body["error"].(map[string]any)["error_data"].(map[string]any)["details"].(string), "next call allowed at") {
		t.Fatalf("connect over limit = %d %v", st, body)
	}
	// a connected call reset the request counters
	_, view := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?user_wa_id="+other, testToken, nil)
	if l := view["actions"].([]any)[0].(map[string]any)["limits"].([]any)[0].(map[string]any); l["current_usage"] != 0.0 {
		t.Fatalf("request usage after connected call = %v", l)
	}
}

func TestNoBusinessMediaEndsCall(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.NoMediaTimeout = 300 * time.Millisecond })
	ctx := ctxT(t)
	uc, err := e.sim.PlaceCall(ctx, CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	biz := newBizPeer(t) // never plays
	answer := biz.answer(t, uc.LocalSDP())
	if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": answer}}); st != 200 {
		t.Fatalf("accept = %d %v", st, body)
	}
	h := e.recv.wait(t, "terminate", callEventIs(uc.ID(), "terminate"))
	ev := h.first("calls")
	errs, _ := h.value()["errors"].([]any) // a sibling of calls, not inside the call
	if ev["status"] != "FAILED" || len(errs) != 1 || errs[0].(map[string]any)["code"] != 138021.0 || uc.EndedBy() != "error:138021" {
		t.Fatalf("terminate = %s (ended by %q)", h.raw, uc.EndedBy())
	}
	if err := uc.WaitState(ctx, Ended); err != nil {
		t.Fatal(err)
	}
}
