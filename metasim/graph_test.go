package metasim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestConfigValidate(t *testing.T) {
	ok := Config{AppSecret: "s", AccessToken: "t", WebhookURL: "http://127.0.0.1:1/webhooks/whatsapp"}
	tests := []struct {
		name   string
		mutate func(*Config)
		valid  bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no secret", func(c *Config) { c.AppSecret = "" }, false},
		{"no token", func(c *Config) { c.AccessToken = "" }, false},
		{"relative webhook url", func(c *Config) { c.WebhookURL = "/webhooks" }, false},
		{"bad graph version", func(c *Config) { c.GraphVersion = "23" }, false},
		{"display number with plus", func(c *Config) { c.DisplayPhoneNumber = "+15550001111" }, false},
		{"negative limit", func(c *Config) { c.Limits.RequestsPer24h = -1 }, false},
		{"negative timeout", func(c *Config) { c.AcceptTimeout = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if (err == nil) != tt.valid {
				t.Fatalf("Validate() = %v, want valid=%v", err, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			sim, err := New(c)
			if (err == nil) != tt.valid {
				t.Fatalf("New() = %v", err)
			}
			if sim != nil {
				if err := sim.Close(); err != nil || sim.Close() != nil {
					t.Fatalf("Close not idempotent: %v", err)
				}
			}
		})
	}
}

func TestSignMatchesIndependentHMAC(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"json", `{"object":"whatsapp_business_account","entry":[]}`},
		{"unicode", `{"name":"Zoë 😀"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac := hmac.New(sha256.New, []byte(testSecret))
			mac.Write([]byte(tt.body))
			want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
			if got := e.sim.Sign([]byte(tt.body)); got != want {
				t.Fatalf("Sign = %s, want %s", got, want)
			}
		})
	}
	// raw delivery is signed and recorded; the receiver checks the signature itself
	st, err := e.sim.SendWebhook(ctxT(t), []byte(`{"object":"whatsapp_business_account","entry":[]}`))
	if err != nil || st != http.StatusOK {
		t.Fatalf("SendWebhook = %d, %v", st, err)
	}
	if w := e.sim.Webhooks(); len(w) != 1 || w[0].Status != 200 || e.recv.badSig.Load() != 0 {
		t.Fatalf("Webhooks = %+v, bad signatures %d", w, e.recv.badSig.Load())
	}
}

func TestGraphValidation(t *testing.T) {
	e := newEnv(t, nil)
	uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	offer := uc.LocalSDP()
	goodAnswer := newBizPeer(t).answer(t, offer)
	passive := strings.Replace(goodAnswer, "a=setup:active", "a=setup:passive", 1)
	const calls = "/v23.0/100000000000001/calls"
	tests := []struct {
		name       string
		method     string
		path       string
		token      string
		body       any
		wantStatus int
		wantCode   int
	}{
		{"no token", "POST", calls, "", map[string]any{"messaging_product": "whatsapp"}, 401, 190},
		{"bad token", "POST", calls, "nope", map[string]any{"messaging_product": "whatsapp"}, 401, 190},
		{"unknown phone number id", "POST", "/v23.0/999/calls", testToken, map[string]any{}, 400, 100},
		{"wrong version", "POST", "/v19.0/100000000000001/calls", testToken, map[string]any{}, 400, 2635},
		{"unknown edge", "POST", "/v23.0/100000000000001/nothing", testToken, map[string]any{}, 400, 100},
		{"bad json", "POST", calls, testToken, `{"action":`, 400, 100},
		{"missing messaging_product", "POST", calls, testToken, map[string]any{"action": "terminate", "call_id": uc.ID()}, 400, 100},
		{"unknown action", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "hold", "call_id": uc.ID()}, 400, 100},
		{"unknown call", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "terminate", "call_id": "wacid.nope"}, 400, 100},
		{"accept with sdp_type offer", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "accept", "call_id": uc.ID(),
			"session": map[string]any{"sdp_type": "offer", "sdp": goodAnswer}}, 400, 100},
		{"pre_accept without session", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "pre_accept", "call_id": uc.ID()}, 400, 100},
		{"pre_accept garbage sdp", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "pre_accept", "call_id": uc.ID(),
			"session": map[string]any{"sdp_type": "answer", "sdp": "hello"}}, 400, 100},
		{"pre_accept passive answer", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "pre_accept", "call_id": uc.ID(),
			"session": map[string]any{"sdp_type": "answer", "sdp": passive}}, 400, 100},
		{"connect without permission", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "connect", "to": "+447700900999",
			"session": map[string]any{"sdp_type": "offer", "sdp": offer}}, 401, 138006},
		{"connect with answer type", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "connect", "to": "447700900999",
			"session": map[string]any{"sdp_type": "answer", "sdp": offer}}, 400, 100},
		{"connect bad number", "POST", calls, testToken, map[string]any{"messaging_product": "whatsapp", "action": "connect", "to": "12ab",
			"session": map[string]any{"sdp_type": "offer", "sdp": offer}}, 400, 100},
		{"permissions without user", "GET", "/v23.0/100000000000001/call_permissions", testToken, nil, 400, 100},
		{"message wrong type", "POST", "/v23.0/100000000000001/messages", testToken, map[string]any{"messaging_product": "whatsapp", "to": "447700900123", "type": "text"}, 400, 100},
		{"settings bad enum", "POST", "/v23.0/100000000000001/settings", testToken, map[string]any{"calling": map[string]any{"status": "ON"}}, 400, 100},
		{"settings three slots a day", "POST", "/v23.0/100000000000001/settings", testToken, map[string]any{"calling": map[string]any{"call_hours": map[string]any{
			"status": "ENABLED", "timezone_id": "Europe/London", "weekly_operating_hours": []any{
				map[string]any{"day_of_week": "MONDAY", "open_time": "0900", "close_time": "1000"},
				map[string]any{"day_of_week": "MONDAY", "open_time": "1100", "close_time": "1200"},
				map[string]any{"day_of_week": "MONDAY", "open_time": "1300", "close_time": "1400"}}}}}, 400, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.sim.Webhooks())
			st, body := e.call(t, tt.method, tt.path, tt.token, tt.body)
			if st != tt.wantStatus || errCode(body) != tt.wantCode {
				t.Fatalf("got %d code %d (%v), want %d code %d", st, errCode(body), body, tt.wantStatus, tt.wantCode)
			}
			eb := body["error"].(map[string]any)
			if eb["message"] == "" || eb["type"] == nil || eb["fbtrace_id"] == nil {
				t.Fatalf("error body not in Meta's format: %v", body)
			}
			if uc.Reached(PreAccepted) || uc.Reached(Ended) || len(e.sim.Webhooks()) < before {
				t.Fatal("bad input changed the call")
			}
		})
	}
	r := e.sim.Requests()
	if len(r) != len(tests) || r[0].Status != 401 || r[0].ErrorCode != 190 || r[9].Action != "accept" || r[9].SDPType != "offer" || r[9].CallID != uc.ID() {
		t.Fatalf("Requests() recorded %d, first %+v", len(r), r[0])
	}
	// the good answer still works after the bad ones, and a different one is refused
	if st, body := e.calls(t, map[string]any{"action": "pre_accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": goodAnswer}}); st != 200 {
		t.Fatalf("pre_accept = %d %v", st, body)
	}
	other := newBizPeer(t).answer(t, offer)
	if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": other}}); st != 400 || errCode(body) != 100 {
		t.Fatalf("accept with a different answer = %d %v", st, body)
	}
	if st, _ := e.calls(t, map[string]any{"action": "terminate", "call_id": uc.ID()}); st != 200 {
		t.Fatal("terminate failed")
	}
	h := e.recv.wait(t, "terminate", callEventIs(uc.ID(), "terminate"))
	if h.first("calls")["status"] != "FAILED" || uc.EndedBy() != "business" {
		t.Fatalf("terminate before accept = %s, ended by %q", h.raw, uc.EndedBy())
	}
	if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": goodAnswer}}); st != 400 || errCode(body) != 100 {
		t.Fatalf("accept on ended call = %d %v", st, body)
	}
}

func TestAcceptDeadline(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1760681506, 0)}
	e := newEnv(t, func(c *Config) { c.Clock = clk.Now })
	ctx := ctxT(t)
	uc, err := e.sim.PlaceCall(ctx, CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	answer := newBizPeer(t).answer(t, uc.LocalSDP())
	clk.Add(46 * time.Second) // default accept window 45 s
	st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": answer}})
	if st != 500 || errCode(body) != 138007 {
		t.Fatalf("late accept = %d %v", st, body)
	}
	h := e.recv.wait(t, "terminate", callEventIs(uc.ID(), "terminate"))
	ev := h.first("calls")
	if ev["status"] != "FAILED" || ev["errors"] != nil || h.value()["errors"] == nil || uc.EndedBy() != "error:138007" {
		t.Fatalf("terminate = %s", h.raw)
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	const path = "/v23.0/100000000000001/settings"
	hours := map[string]any{"status": "ENABLED", "timezone_id": "Europe/London", "weekly_operating_hours": []any{
		map[string]any{"day_of_week": "MONDAY", "open_time": "0900", "close_time": "1700"}}}
	if st, body := e.call(t, "POST", path, testToken, map[string]any{"calling": map[string]any{
		"status": "ENABLED", "callback_permission_status": "ENABLED", "call_hours": hours}}); st != 200 || body["success"] != true {
		t.Fatalf("POST settings = %d %v", st, body)
	}
	st, body := e.call(t, "GET", path, testToken, nil)
	c := body["calling"].(map[string]any)
	if st != 200 || c["callback_permission_status"] != "ENABLED" || c["call_hours"].(map[string]any)["timezone_id"] != "Europe/London" || c["call_icon_visibility"] != "DEFAULT" {
		t.Fatalf("GET settings = %d %v", st, body)
	}
	// disabling calling refuses user calls and connects
	if st, _ := e.call(t, "POST", path, testToken, map[string]any{"calling": map[string]any{"status": "DISABLED"}}); st != 200 {
		t.Fatal("disable failed")
	}
	if _, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"}); !errors.Is(err, ErrCallingDisabled) {
		t.Fatalf("PlaceCall with calling disabled = %v", err)
	}
}

func TestPlaceCallRejectsBadInput(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name string
		o    CallOptions
		want error
	}{
		{"no number", CallOptions{}, ErrInvalidNumber},
		{"letters", CallOptions{From: "+44abc"}, ErrInvalidNumber},
		{"leading zero", CallOptions{From: "0447700900123"}, ErrInvalidNumber},
		{"not ogg", CallOptions{From: "447700900123", Audio: []byte("RIFF....")}, ErrInvalidAudio},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.sim.PlaceCall(ctxT(t), tt.o); !errors.Is(err, tt.want) {
				t.Fatalf("PlaceCall = %v, want %v", err, tt.want)
			}
			if len(e.sim.Calls()) != 0 {
				t.Fatal("bad input created a call")
			}
		})
	}
}

func TestSettingsShapeWebhookAndSIP(t *testing.T) {
	e := newEnv(t, nil)
	const path = "/v23.0/100000000000001/settings"
	st, body := e.call(t, "GET", path, testToken, nil)
	c := body["calling"].(map[string]any)
	for _, k := range []string{"status", "call_icon_visibility", "call_icons", "callback_permission_status", "call_hours", "sip",
		"srtp_key_exchange_protocol", "audio", "restrictions"} {
		if _, ok := c[k]; st != 200 || !ok {
			t.Fatalf("GET settings lacks %s: %v", k, body)
		}
	}
	bad := []map[string]any{
		{"call_hours": map[string]any{"status": "ENABLED", "timezone_id": "Europe/London", "weekly_operating_hours": []any{
			map[string]any{"day_of_week": "MONDAY", "open_time": "0900", "close_time": "1200"},
			map[string]any{"day_of_week": "MONDAY", "open_time": "1100", "close_time": "1700"}}}},
		{"call_hours": map[string]any{"status": "ENABLED", "timezone_id": "Europe/London", "weekly_operating_hours": []any{
			map[string]any{"day_of_week": "MONDAY", "open_time": "0900", "close_time": "1700"}},
			"holiday_schedule": []any{map[string]any{"date": "2026-13-01", "start_time": "0000", "end_time": "2359"}}}},
		{"sip": map[string]any{"status": "MAYBE"}},
		{"restrictions": map[string]any{}},
		{"status": "ON"},
		{"unknown_key": 1},
	}
	for i, b := range bad {
		if st, body := e.call(t, "POST", path, testToken, map[string]any{"calling": b}); st != 400 || errCode(body) != 100 {
			t.Fatalf("bad settings %d = %d %v", i, st, body)
		}
	}
	if st, after := e.call(t, "GET", path, testToken, nil); st != 200 || fmt.Sprint(after) != fmt.Sprint(body) {
		t.Fatalf("bad input changed the settings: %v", after)
	}
	if st, body := e.call(t, "POST", path, testToken, map[string]any{"calling": map[string]any{
		"call_icon_visibility": "DISABLE_ALL",
		"sip":                  map[string]any{"status": "ENABLED", "servers": []any{map[string]any{"hostname": "sip.example.com", "port": 5061}}}}}); st != 200 {
		t.Fatalf("POST = %d %v", st, body)
	}
	h := e.recv.wait(t, "account_settings_update", func(h hook) bool { return h.field() == "account_settings_update" })
	v := h.value()
	pns := v["phone_number_settings"].(map[string]any)
	if v["type"] != "PHONE_NUMBER_SETTINGS" || pns["phone_number_id"] != "100000000000001" ||
		pns["calling"].(map[string]any)["call_icon_visibility"] != "DISABLE_ALL" {
		t.Fatalf("account_settings_update = %s", h.raw)
	}
	// SIP enabled: Graph calling is refused with 131055
	if st, body := e.calls(t, map[string]any{"action": "connect", "to": "447700900123",
		"session": map[string]any{"sdp_type": "offer", "sdp": "v=0"}}); st != 400 || errCode(body) != 131055 {
		t.Fatalf("connect with SIP enabled = %d %v", st, body)
	}
}

// FuzzGraphCalls: no request body crashes the handler or changes state on error.
func FuzzGraphCalls(f *testing.F) {
	for _, s := range []string{`{"messaging_product":"whatsapp","action":"connect","to":"447700900123"}`,
		`{"messaging_product":"whatsapp","action":"accept","call_id":"wacid.x","session":{"sdp_type":"answer","sdp":"v=0"}}`,
		`{"messaging_product":"whatsapp","action":"connect","recipient":"US.1","session":{"sdp_type":"offer","sdp":"v=0\r\n"}}`,
		`{`, `[]`, `{"recording":{"status":"ENABLED"}}`} {
		f.Add(s)
	}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer recv.Close()
	sim, err := New(Config{AppSecret: "s", AccessToken: "t", WebhookURL: recv.URL, LoopbackOnly: true})
	if err != nil {
		f.Fatal(err)
	}
	defer sim.Close()
	h := sim.GraphHandler()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v23.0/100000000000001/calls", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		rr := httptest.NewRecorder()
		before := len(sim.Calls())
		h.ServeHTTP(rr, req)
		if rr.Code != 200 && len(sim.Calls()) != before {
			t.Fatalf("an error (%d) created a call", rr.Code)
		}
		for _, c := range sim.Calls() {
			c.end(endInfo{by: "closed", silent: true})
		}
	})
}
