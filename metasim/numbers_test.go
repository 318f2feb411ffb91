package metasim

import (
	"testing"
	"time"
)

func TestSeveralNumbersTokensAndEntries(t *testing.T) {
	e := newEnv(t, twoNumbers)
	const user = "447700900123"
	tests := []struct {
		name  string
		path  string
		token string
		want  int
	}{
		{"primary with business token", "/v23.0/100000000000001/call_permissions?user_wa_id=" + user, testToken, 200},
		{"same WABA number with business token", "/v23.0/100000000000003/call_permissions?user_wa_id=" + user, testToken, 200},
		{"other WABA with its token", "/v23.0/100000000000004/call_permissions?user_wa_id=" + user, "tok-2", 200},
		{"other WABA with the business token", "/v23.0/100000000000004/call_permissions?user_wa_id=" + user, testToken, 401},
		{"primary with the other token", "/v23.0/100000000000001/call_permissions?user_wa_id=" + user, "tok-2", 401},
		{"unknown object", "/v23.0/999/call_permissions?user_wa_id=" + user, testToken, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, body := e.call(t, "GET", tt.path, tt.token, nil); st != tt.want {
				t.Fatalf("= %d %v", st, body)
			}
		})
	}
	// permissions are per business number
	if err := e.sim.GrantPermission("100000000000004", user, false); err != nil {
		t.Fatal(err)
	}
	_, v1 := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?user_wa_id="+user, testToken, nil)
	_, v2 := e.call(t, "GET", "/v23.0/100000000000004/call_permissions?user_wa_id="+user, "tok-2", nil)
	if v1["permission"].(map[string]any)["status"] != "no_permission" || v2["permission"].(map[string]any)["status"] != "temporary" {
		t.Fatalf("per-number permissions: %v / %v", v1, v2)
	}
	// a call to a number on another WABA comes in that WABA's entry
	uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: user, To: "+447700900999"})
	if err != nil {
		t.Fatal(err)
	}
	h := e.recv.wait(t, "connect", callEventIs(uc.ID(), "connect"))
	en := h.body["entry"].([]any)[0].(map[string]any)
	if en["id"] != "200000000000005" || h.value()["metadata"].(map[string]any)["phone_number_id"] != "100000000000004" ||
		h.first("calls")["to"] != "447700900999" || uc.PhoneNumberID() != "100000000000004" {
		t.Fatalf("connect = %s", h.raw)
	}
	// the call belongs to its number: actions through another number fail
	if st, body := e.calls(t, map[string]any{"action": "terminate", "call_id": uc.ID()}); st != 400 || errCode(body) != 100 {
		t.Fatalf("terminate through the wrong number = %d %v", st, body)
	}
	if _, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: user, To: "123"}); err == nil {
		t.Fatal("a call to an unknown business number must fail")
	}
}

func TestCallPermissionsShapeAndRateLimit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1780000000, 0)}
	e := newEnv(t, func(c *Config) { c.Clock = clk.Now; c.AssumeWindowOpen = true })
	const user = "447700900123"
	path := "/v23.0/100000000000001/call_permissions?user_wa_id=" + user
	for i := range 5 {
		if st, body := e.call(t, "GET", path, testToken, nil); st != 200 {
			t.Fatalf("check %d = %d %v", i, st, body)
		}
	}
	st, body := e.call(t, "GET", path, testToken, nil)
	if st != 429 || errCode(body) != 613 {
		t.Fatalf("6th check in one second = %d %v", st, body)
	}
	clk.Add(time.Second)
	st, view := e.call(t, "GET", path, testToken, nil)
	if st != 200 {
		t.Fatalf("after the window = %d %v", st, view)
	}
	perm := view["permission"].(map[string]any)
	if perm["status"] != "no_permission" || perm["expiration_time"] != nil || view["messaging_product"] != "whatsapp" {
		t.Fatalf("view = %v", view)
	}
	for _, a := range view["actions"].([]any) {
		for _, l := range a.(map[string]any)["limits"].([]any) {
			if l.(map[string]any)["limit_expiration_time"] != nil {
				t.Fatalf("limit_expiration_time only when used up: %v", l)
			}
		}
	}
	grantByRequest(t, e, user) // 1 of 1 per 24 h: used up
	clk.Add(time.Second)
	_, view = e.call(t, "GET", path, testToken, nil)
	req := view["actions"].([]any)[0].(map[string]any)
	l24 := req["limits"].([]any)[0].(map[string]any)
	l7 := req["limits"].([]any)[1].(map[string]any)
	if req["can_perform_action"] != false || l24["limit_expiration_time"] == nil || l7["limit_expiration_time"] != nil ||
		view["permission"].(map[string]any)["expiration_time"] == nil {
		t.Fatalf("view after a request = %v", view)
	}
	// recipient= works too; to/user_wa_id wins
	if st, body := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?recipient=XX.1", testToken, nil); st != 400 || errCode(body) != 100 {
		t.Fatalf("unknown BSUID = %d %v", st, body)
	}
}
