package metasim

import (
	"testing"
	"time"
)

// msgStatuses collects the messages-field statuses of wamid until want is seen.
func msgStatuses(t *testing.T, e *env, wamid string, want string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for out[want] == nil {
		h := e.recv.wait(t, "status "+want+" of "+wamid, func(h hook) bool {
			s := h.first("statuses")
			return h.field() == "messages" && s != nil && s["id"] == wamid
		})
		s := h.first("statuses")
		s["_contacts"] = h.value()["contacts"]
		out[s["status"].(string)] = s
	}
	return out
}

func TestMessagesWindowPricingAndStatuses(t *testing.T) {
	before := time.Date(2026, 9, 15, 12, 0, 0, 0, time.UTC)
	after := time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		now      time.Time
		pricing  Pricing
		wantType string
		billable bool
	}{
		{"service before 2026-10-01", before, Pricing{}, "free_customer_service", false},
		{"service from 2026-10-01", after, Pricing{}, "regular", true},
		{"configured free", after, Pricing{ServiceType: "free_customer_service"}, "free_customer_service", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: tt.now}
			e := newEnv(t, func(c *Config) { c.Clock = clk.Now; c.Pricing = tt.pricing })
			const user = "447700900123"
			e.sim.SetUser(user, UserBehavior{Username: "ann"})
			// outside the window: Meta's re-engagement error, nothing sent
			if st, body := e.call(t, "POST", messages, testToken, permissionRequest(user)); st != 400 || errCode(body) != 131047 {
				t.Fatalf("request outside the window = %d %v", st, body)
			}
			if _, err := e.sim.SendUserMessage("", user, "hello"); err != nil {
				t.Fatal(err)
			}
			in := e.recv.wait(t, "user text", func(h hook) bool { m := h.first("messages"); return m != nil && m["type"] == "text" })
			if m := in.first("messages"); m["from"] != user || m["text"].(map[string]any)["body"] != "hello" || m["from_user_id"] == nil {
				t.Fatalf("user message = %s", in.raw)
			}
			if !e.sim.WindowOpen("", user) {
				t.Fatal("a user message must open the window")
			}
			st, body := e.call(t, "POST", messages, testToken, permissionRequest(user))
			if st != 200 {
				t.Fatalf("request inside the window = %d %v", st, body)
			}
			wamid := body["messages"].([]any)[0].(map[string]any)["id"].(string)
			sts := msgStatuses(t, e, wamid, "read")
			for _, name := range []string{"sent", "delivered"} {
				s := sts[name]
				p, _ := s["pricing"].(map[string]any)
				if p == nil || p["pricing_model"] != "PMP" || p["type"] != tt.wantType || p["billable"] != tt.billable || p["category"] != "service" ||
					s["recipient_id"] != user || s["recipient_user_id"] == nil {
					t.Fatalf("%s status = %v", name, s)
				}
			}
			r := e.recv.wait(t, "reply", permissionReplyHook)
			if r.first("messages")["context"].(map[string]any)["id"] != wamid {
				t.Fatalf("reply = %s", r.raw)
			}
			// the window closes 24 h later
			clk.Add(25 * time.Hour)
			if st, body := e.call(t, "POST", messages, testToken, map[string]any{"messaging_product": "whatsapp", "to": user,
				"type": "text", "text": map[string]any{"body": "late"}}); st != 400 || errCode(body) != 131047 {
				t.Fatalf("text after the window = %d %v", st, body)
			}
		})
	}
}

func TestTemplatePermissionRequestOutsideWindow(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	e := newEnv(t, func(c *Config) {
		c.Clock = clk.Now
		c.Templates = []Template{{Name: "callme", Language: "en_US", Category: "MARKETING", PermissionRequest: true}}
	})
	const user = "447700900123"
	send := func(name string) (int, map[string]any) {
		return e.call(t, "POST", messages, testToken, map[string]any{"messaging_product": "whatsapp", "to": user, "type": "template",
			"template": map[string]any{"name": name, "language": map[string]any{"code": "en_US"}}})
	}
	st, body := send("callme")
	if st != 200 {
		t.Fatalf("template outside the window = %d %v", st, body)
	}
	wamid := body["messages"].([]any)[0].(map[string]any)["id"].(string)
	sts := msgStatuses(t, e, wamid, "delivered")
	if p := sts["sent"]["pricing"].(map[string]any); p["category"] != "marketing" || p["type"] != "regular" || p["billable"] != true {
		t.Fatalf("pricing = %v", p)
	}
	e.recv.wait(t, "reply", permissionReplyHook)
	// the 24 h limit applies to templates too
	if st, body := send("callme"); st != 400 || errCode(body) != 138009 {
		t.Fatalf("second template request = %d %v", st, body)
	}
	// unknown template
	if st, body := send("nope"); st != 404 || errCode(body) != 132001 {
		t.Fatalf("unknown template = %d %v", st, body)
	}
	// create a UTILITY one through the WABA edge
	const tplPath = "/v23.0/200000000000002/message_templates"
	tests := []struct {
		name string
		body map[string]any
		want int
	}{
		{"no body component", map[string]any{"name": "u1", "language": "en_US", "category": "UTILITY",
			"components": []any{map[string]any{"type": "call_permission_request"}}}, 100},
		{"authentication", map[string]any{"name": "u1", "language": "en_US", "category": "AUTHENTICATION",
			"components": []any{map[string]any{"type": "BODY", "text": "x"}, map[string]any{"type": "call_permission_request"}}}, 100},
		{"ok", map[string]any{"name": "u1", "language": "en_US", "category": "UTILITY",
			"components": []any{map[string]any{"type": "BODY", "text": "May we call?"}, map[string]any{"type": "call_permission_request"}}}, 0},
	}
	for _, tt := range tests {
		st, body := e.call(t, "POST", tplPath, testToken, tt.body)
		if errCode(body) != tt.want || (tt.want == 0 && (st != 200 || body["status"] != "APPROVED")) {
			t.Fatalf("%s: create = %d %v", tt.name, st, body)
		}
	}
	const other = "447700900124"
	st, body = e.call(t, "POST", messages, testToken, map[string]any{"messaging_product": "whatsapp", "to": other, "type": "template",
		"template": map[string]any{"name": "u1", "language": map[string]any{"code": "en_US"}}})
	if st != 200 {
		t.Fatalf("utility template = %d %v", st, body)
	}
	wamid = body["messages"].([]any)[0].(map[string]any)["id"].(string)
	if p := msgStatuses(t, e, wamid, "sent")["sent"]["pricing"].(map[string]any); p["category"] != "utility" || p["type"] != "regular" {
		t.Fatalf("utility pricing = %v", p)
	}
}

func TestMessageFailureAndCallButton(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AssumeWindowOpen = true })
	const user = "447700900123"
	e.sim.SetUser(user, UserBehavior{MessageFailCode: 131026})
	button := func(display string, ttl int) map[string]any {
		return map[string]any{"messaging_product": "whatsapp", "to": user, "type": "interactive", "interactive": map[string]any{
			"type": "voice_call", "body": map[string]any{"text": "Call us"},
			"action": map[string]any{"name": "voice_call", "parameters": map[string]any{"display_text": display, "ttl_minutes": ttl, "payload": "p"}}}}
	}
	if st, body := e.call(t, "POST", messages, testToken, button("this is far too long a label", 10)); st != 400 || errCode(body) != 100 {
		t.Fatalf("long display_text = %d %v", st, body)
	}
	if st, body := e.call(t, "POST", messages, testToken, button("Call", 50000)); st != 400 || errCode(body) != 100 {
		t.Fatalf("ttl too long = %d %v", st, body)
	}
	st, body := e.call(t, "POST", messages, testToken, button("Call", 60))
	if st != 200 {
		t.Fatalf("call button = %d %v", st, body)
	}
	wamid := body["messages"].([]any)[0].(map[string]any)["id"].(string)
	f := msgStatuses(t, e, wamid, "failed")["failed"]
	errs, _ := f["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["code"] != 131026.0 || f["_contacts"] != nil || f["pricing"] != nil {
		t.Fatalf("failed status = %v", f)
	}
}

func TestIdentityChanges(t *testing.T) {
	e := newEnv(t, nil)
	const user = "447700900123"
	e.sim.SetUser(user, UserBehavior{})
	if err := e.sim.GrantPermission("", user, true); err != nil {
		t.Fatal(err)
	}
	old := e.sim.userByPhone(user).b.BSUID
	nb, err := e.sim.ChangeUserNumber(user, "447700900777")
	if err != nil {
		t.Fatal(err)
	}
	h := e.recv.wait(t, "user_changed_number", func(h hook) bool { m := h.first("messages"); return m != nil && m["type"] == "system" })
	sys := h.first("messages")["system"].(map[string]any)
	if sys["type"] != "user_changed_number" || sys["previous_user_id"] != old || sys["user_id"] != nb || sys["wa_id"] != "447700900777" || nb == old {
		t.Fatalf("system message = %s", h.raw)
	}
	_, view := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?recipient="+nb, testToken, nil)
	if view["permission"].(map[string]any)["status"] != "permanent" {
		t.Fatalf("the permission must follow the user: %v", view)
	}
	id2, err := e.sim.ChangeUserID("447700900777")
	if err != nil {
		t.Fatal(err)
	}
	h = e.recv.wait(t, "user_changed_user_id", func(h hook) bool {
		m := h.first("messages")
		return m != nil && m["type"] == "system" && m["system"].(map[string]any)["type"] == "user_changed_user_id"
	})
	if sys := h.first("messages")["system"].(map[string]any); sys["previous_user_id"] != nb || sys["user_id"] != id2 {
		t.Fatalf("system message = %s", h.raw)
	}
}
