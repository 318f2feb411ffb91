package cloudapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body\n got: %s\nwant: %s", got, want)
	}
}

func sdpJSON() string { b, _ := json.Marshal(testSDP); return string(b) }

func TestActionWireFormat(t *testing.T) {
	sdp := sdpJSON()
	tests := []struct {
		name   string
		call   func(ctx context.Context, c *Client) error
		method string
		path   string
		query  string
		body   string // "" for no body
	}{
		{"pre_accept", func(ctx context.Context, c *Client) error { return c.PreAccept(ctx, callID, testSDP) },
			"POST", "calls", "", `{"messaging_product":"whatsapp","action":"pre_accept","call_id":"` + callID + `","session":{"sdp_type":"answer","sdp":` + sdp + `}}`},
		{"accept without opaque", func(ctx context.Context, c *Client) error { return c.Accept(ctx, callID, testSDP, "") },
			"POST", "calls", "", `{"messaging_product":"whatsapp","action":"accept","call_id":"` + callID + `","session":{"sdp_type":"answer","sdp":` + sdp + `}}`},
		{"accept with opaque", func(ctx context.Context, c *Client) error { return c.Accept(ctx, callID, testSDP, "agent=42") },
			"POST", "calls", "", `{"messaging_product":"whatsapp","action":"accept","call_id":"` + callID + `","session":{"sdp_type":"answer","sdp":` + sdp + `},"biz_opaque_callback_data":"agent=42"}`},
		{"reject", func(ctx context.Context, c *Client) error { return c.Reject(ctx, callID) },
			"POST", "calls", "", `{"messaging_product":"whatsapp","action":"reject","call_id":"` + callID + `"}`},
		{"terminate", func(ctx context.Context, c *Client) error { return c.Terminate(ctx, callID) },
			"POST", "calls", "", `{"messaging_product":"whatsapp","action":"terminate","call_id":"` + callID + `"}`},
		{"connect", func(ctx context.Context, c *Client) error {
			id, err := c.Connect(ctx, "447700900123", testSDP, "ticket=A-1009")
			if err == nil && id != callID {
				t.Errorf("call id %q, want %q", id, callID)
			}
			return err
		}, "POST", "calls", "", `{"messaging_product":"whatsapp","to":"447700900123","action":"connect","session":{"sdp_type":"offer","sdp":` + sdp + `},"biz_opaque_callback_data":"ticket=A-1009"}`},
		{"connect E.164 without opaque", func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, "+447700900123", testSDP, "")
			return err
		}, "POST", "calls", "", `{"messaging_product":"whatsapp","to":"+447700900123","action":"connect","session":{"sdp_type":"offer","sdp":` + sdp + `}}`},
		{"call permission request", func(ctx context.Context, c *Client) error {
			id, err := c.SendCallPermissionRequest(ctx, "447700900123", "May we call you about your order?")
			if err == nil && id != "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgS" {
				t.Errorf("message id %q", id)
			}
			return err
		}, "POST", "messages", "", `{"messaging_product":"whatsapp","recipient_type":"individual","to":"447700900123","type":"interactive",
			"interactive":{"type":"call_permission_request","body":{"text":"May we call you about your order?"},"action":{"name":"call_permission_request"}}}`},
		{"call_permissions", func(ctx context.Context, c *Client) error {
			_, err := c.CallPermissions(ctx, "+447700900123")
			return err
		}, "GET", "call_permissions", "user_wa_id=447700900123", ""},
		{"get settings", func(ctx context.Context, c *Client) error { _, err := c.GetSettings(ctx); return err },
			"GET", "settings", "", ""},
		{"update settings", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{Status: "ENABLED", CallbackPermissionStatus: "ENABLED",
				CallHours: &CallHours{Status: "ENABLED", TimezoneID: "Asia/Kolkata",
					WeeklyOperatingHours: []OperatingHours{{DayOfWeek: "FRIDAY", OpenTime: "0900", CloseTime: "1700"}}}}})
		}, "POST", "settings", "", `{"calling":{"status":"ENABLED","callback_permission_status":"ENABLED","call_hours":{"status":"ENABLED",
			"timezone_id":"Asia/Kolkata","weekly_operating_hours":[{"day_of_week":"FRIDAY","open_time":"0900","close_time":"1700"}]}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { okFor(w, r) })
			c, _ := testClient(t, srv.URL, nil)
			if err := tc.call(context.Background(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tc.method || r.Path != "/v23.0/"+testPNID+"/"+tc.path || r.RawQuery != tc.query {
				t.Errorf("request %s %s?%s, want %s /v23.0/%s/%s?%s", r.Method, r.Path, r.RawQuery, tc.method, testPNID, tc.path, tc.query)
			}
			if r.Auth != "Bearer "+testToken {
				t.Errorf("Authorization %q", r.Auth)
			}
			if tc.body == "" {
				if r.Body != "" {
					t.Errorf("unexpected body %s", r.Body)
				}
				return
			}
			if r.ContentType != "application/json" {
				t.Errorf("Content-Type %q", r.ContentType)
			}
			jsonEqual(t, r.Body, tc.body)
		})
	}
}

func TestCallPermissionsDecoding(t *testing.T) {
	srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { okFor(w, r) })
	c, _ := testClient(t, srv.URL, nil)
	p, err := c.CallPermissions(context.Background(), "447700900123")
	if err != nil {
		t.Fatal(err)
	}
	want := &Permission{Status: PermissionTemporary, ExpiresAt: time.Unix(1761286400, 0).UTC(), Actions: []Action{
		{Name: ActionNameSendPermissionRequest, CanPerform: true, Limits: []Limit{
			{TimePeriod: "PT24H", Period: 24 * time.Hour, MaxAllowed: 1, CurrentUsage: 0, ExpiresAt: time.Unix(1760768000, 0).UTC()},
			{TimePeriod: "P7D", Period: 7 * 24 * time.Hour, MaxAllowed: 2, CurrentUsage: 1},
		}},
		{Name: ActionNameStartCall, CanPerform: false, Limits: []Limit{
			{TimePeriod: "PT24H", Period: 24 * time.Hour, MaxAllowed: 100, CurrentUsage: 100, ExpiresAt: time.Unix(1760768000, 0).UTC()},
		}},
	}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	if a, ok := p.Action(ActionNameStartCall); !ok || a.CanPerform {
		t.Errorf("Action(start_call) = %+v, %v", a, ok)
	}
	if _, ok := p.Action("nope"); ok {
		t.Error("Action(nope) found")
	}
}

func TestGetSettingsDecoding(t *testing.T) {
	srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { okFor(w, r) })
	c, _ := testClient(t, srv.URL, nil)
	s, err := c.GetSettings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cs := s.Calling
	if cs.Status != "ENABLED" || cs.CallbackPermissionStatus != "ENABLED" || cs.SRTPKeyExchangeProtocol != "DTLS" ||
		cs.CallHours == nil || len(cs.CallHours.WeeklyOperatingHours) != 2 || len(cs.CallHours.HolidaySchedule) != 1 ||
		cs.CallHours.TimezoneID != "Europe/London" || !json.Valid(cs.SIP) {
		t.Errorf("settings %+v", cs)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Meta's own settings do not validate: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		sentinel error
	}{
		{"calling disabled", 138000, ErrCallingDisabled},
		{"user cannot receive", 138001, ErrUserCannotReceive},
		{"concurrent limit", 138002, ErrConcurrentLimit},
		{"call in progress", 138003, ErrCallInProgress},
		{"rate limited", 138005, ErrRateLimited},
		{"no permission", 138006, ErrNoPermission},
		{"connect timeout", 138007, ErrConnectTimeout},
		{"request limit", 138009, ErrRequestLimit},
		{"connected call limit", 138012, ErrConnectedCallLimit},
		{"country unavailable", 138013, ErrCountryUnavailable},
		{"low quality", 138014, ErrLowQuality},
		{"permanent exists", 138017, ErrPermanentExists},
		{"no media", 138021, ErrNoMedia},
		{"invalid parameter", 100, ErrInvalidParameter},
	}
	all := []error{ErrCallingDisabled, ErrUserCannotReceive, ErrConcurrentLimit, ErrCallInProgress, ErrRateLimited,
		ErrNoPermission, ErrConnectTimeout, ErrRequestLimit, ErrConnectedCallLimit, ErrCountryUnavailable,
		ErrLowQuality, ErrPermanentExists, ErrNoMedia, ErrInvalidParameter}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
				writeGraphError(w, http.StatusBadRequest, tc.code, "Meta says no", "next allowed at 1760768000")
			})
			c, _ := testClient(t, srv.URL, nil)
			_, err := c.Connect(context.Background(), "447700900123", testSDP, "")
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("err %v is not %v", err, tc.sentinel)
			}
			for _, other := range all {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Errorf("err also matches %v", other)
				}
			}
			if errors.Is(err, ErrOutcomeUnknown) {
				t.Error("a 4xx answer is a definite refusal, not an unknown outcome")
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("err %v is not *Error", err)
			}
			want := Error{HTTPStatus: 400, Code: tc.code, Subcode: 2494010, Type: "OAuthException",
				Message: "Meta says no", FBTraceID: "AbCdEf123", Details: "next allowed at 1760768000"}
			if *me != want {
				t.Errorf("got %+v, want %+v", *me, want)
			}
			if r := me.Reason(); !strings.HasPrefix(r, ReasonForCode(tc.code)) || !strings.Contains(r, "next allowed") {
				t.Errorf("Reason %q", r)
			}
			if strings.HasPrefix(ReasonForCode(tc.code), "WhatsApp returned error") {
				t.Errorf("code %d has no specific reason", tc.code)
			}
			if srv.hits.Load() != 1 {
				t.Errorf("%d hits: a Meta 4xx must not be retried", srv.hits.Load())
			}
		})
	}
}

func TestErrorWithoutGraphBody(t *testing.T) {
	tests := []struct {
		name   string
		status int
		reason string
	}{
		{"bad gateway", 502, "temporarily unavailable (HTTP 502)"},
		{"too many", 429, "too many requests"},
		{"forbidden", 403, "refused the request (HTTP 403)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				w.Write([]byte("<html>oops</html>"))
			})
			c, _ := testClient(t, srv.URL, func(c *Config) { c.MaxRetries = -1 })
			err := c.Terminate(context.Background(), callID)
			var me *Error
			if !errors.As(err, &me) || me.HTTPStatus != tc.status || me.Code != 0 {
				t.Fatalf("err %v", err)
			}
			if !strings.Contains(me.Reason(), tc.reason) {
				t.Errorf("Reason %q lacks %q", me.Reason(), tc.reason)
			}
		})
	}
}

func TestReasonForUnknownCode(t *testing.T) {
	if got := ReasonForCode(131999); got != "WhatsApp returned error 131999" {
		t.Errorf("got %q", got)
	}
	e := &Error{HTTPStatus: 400, Code: 131999, Message: "Something new"}
	if got := e.Reason(); got != "WhatsApp returned error 131999: Something new" {
		t.Errorf("got %q", got)
	}
	// Undocumented calling codes show Meta's message verbatim.
	e2 := &Error{HTTPStatus: 400, Code: 138016, Message: "Call limit for test numbers"}
	if got := e2.Reason(); got != "WhatsApp returned error 138016: Call limit for test numbers" {
		t.Errorf("got %q", got)
	}
	if s := e.Error(); !strings.Contains(s, "131999") || !strings.Contains(s, "http 400") {
		t.Errorf("Error() %q", s)
	}
}

func TestBadInputSendsNothing(t *testing.T) {
	long := strings.Repeat("x", 513)
	tests := []struct {
		name string
		call func(ctx context.Context, c *Client) error
	}{
		{"pre_accept empty call id", func(ctx context.Context, c *Client) error { return c.PreAccept(ctx, "", testSDP) }},
		{"pre_accept call id with space", func(ctx context.Context, c *Client) error { return c.PreAccept(ctx, "wacid. x", testSDP) }},
		{"pre_accept empty sdp", func(ctx context.Context, c *Client) error { return c.PreAccept(ctx, callID, "") }},
		{"accept not an sdp", func(ctx context.Context, c *Client) error { return c.Accept(ctx, callID, "hello", "") }},
		{"accept sdp without audio", func(ctx context.Context, c *Client) error { return c.Accept(ctx, callID, "v=0\r\ns=-\r\n", "") }},
		{"accept opaque too long", func(ctx context.Context, c *Client) error { return c.Accept(ctx, callID, testSDP, long) }},
		{"reject empty", func(ctx context.Context, c *Client) error { return c.Reject(ctx, "") }},
		{"terminate control char", func(ctx context.Context, c *Client) error { return c.Terminate(ctx, "wacid.\n") }},
		{"connect letters", func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, "44770ABC0123", testSDP, "")
			return err
		}},
		{"connect too short", func(ctx context.Context, c *Client) error { _, err := c.Connect(ctx, "+123", testSDP, ""); return err }},
		{"connect too long", func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, "+1234567890123456", testSDP, "")
			return err
		}},
		{"connect opaque too long", func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, "447700900123", testSDP, long)
			return err
		}},
		{"permission empty text", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallPermissionRequest(ctx, "447700900123", "  ")
			return err
		}},
		{"permission text too long", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallPermissionRequest(ctx, "447700900123", strings.Repeat("é", 1025))
			return err
		}},
		{"permissions bad number", func(ctx context.Context, c *Client) error { _, err := c.CallPermissions(ctx, "0044"); return err }},
		{"settings bad status", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{Status: "ON"}})
		}},
		{"settings three slots", func(ctx context.Context, c *Client) error {
			slot := OperatingHours{DayOfWeek: "MONDAY", OpenTime: "0900", CloseTime: "1000"}
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{CallHours: &CallHours{Status: "ENABLED",
				TimezoneID: "Europe/London", WeeklyOperatingHours: []OperatingHours{slot, slot, slot}}}})
		}},
		{"settings bad hhmm", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{CallHours: &CallHours{Status: "ENABLED",
				TimezoneID: "Europe/London", WeeklyOperatingHours: []OperatingHours{{DayOfWeek: "MONDAY", OpenTime: "9:00", CloseTime: "1000"}}}}})
		}},
		{"settings 21 holidays", func(ctx context.Context, c *Client) error {
			h := make([]Holiday, 21)
			for i := range h {
				h[i] = Holiday{Date: "2026-12-25", StartTime: "0000", EndTime: "2359"}
			}
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{CallHours: &CallHours{Status: "ENABLED",
				TimezoneID: "Europe/London", HolidaySchedule: h}}})
		}},
		{"settings bad date", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{CallHours: &CallHours{Status: "DISABLED",
				TimezoneID: "Europe/London", HolidaySchedule: []Holiday{{Date: "25/12/2026", StartTime: "0000", EndTime: "2359"}}}}})
		}},
		{"settings sip not json", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{SIP: json.RawMessage("{")}})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { okFor(w, r) })
			c, _ := testClient(t, srv.URL, nil)
			err := tc.call(context.Background(), c)
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("err = %v, want ErrBadInput", err)
			}
			if n := srv.hits.Load(); n != 0 {
				t.Errorf("%d requests sent for bad input", n)
			}
		})
	}
}

func TestUnexpectedSuccessBody(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		call    func(ctx context.Context, c *Client) error
		unknown bool // wraps ErrOutcomeUnknown
	}{
		{"terminate success false", `{"success":false}`, func(ctx context.Context, c *Client) error { return c.Terminate(ctx, callID) }, false},
		{"terminate not json", `ok`, func(ctx context.Context, c *Client) error { return c.Terminate(ctx, callID) }, false},
		{"connect without id", `{"messaging_product":"whatsapp","calls":[]}`, func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, "447700900123", testSDP, "")
			return err
		}, true},
		{"messages without id", `{"messages":[{}]}`, func(ctx context.Context, c *Client) error {
			_, err := c.SendCallPermissionRequest(ctx, "447700900123", "hi")
			return err
		}, true},
		{"permissions without status", `{"actions":[]}`, func(ctx context.Context, c *Client) error {
			_, err := c.CallPermissions(ctx, "447700900123")
			return err
		}, false},
		{"settings without calling", `{"storage_configuration":{}}`, func(ctx context.Context, c *Client) error {
			_, err := c.GetSettings(ctx)
			return err
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, tc.body) })
			c, _ := testClient(t, srv.URL, nil)
			err := tc.call(context.Background(), c)
			if !errors.Is(err, ErrUnexpectedResponse) {
				t.Fatalf("err = %v, want ErrUnexpectedResponse", err)
			}
			if errors.Is(err, ErrOutcomeUnknown) != tc.unknown {
				t.Errorf("ErrOutcomeUnknown = %v, want %v", !tc.unknown, tc.unknown)
			}
			if srv.hits.Load() != 1 {
				t.Errorf("%d hits, want 1", srv.hits.Load())
			}
		})
	}
}
