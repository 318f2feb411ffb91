package cloudapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testBSUID  = "GB.13491208655302741918"
	testParent = "US.ENT.11815799212886844830"
)

func TestNewWireFormats(t *testing.T) {
	sdp := sdpJSON()
	rec := Enabled("quality assurance", "en_GB")
	tr := &MediaOpt{Status: MediaDisabled}
	start := time.Unix(1764374400, 0)
	end := time.Unix(1764633600, 0)
	tests := []struct {
		name   string
		call   func(ctx context.Context, c *Client) error
		method string
		path   string // after /v23.0/
		query  url.Values
		body   string
	}{
		{"connect to a BSUID", func(ctx context.Context, c *Client) error {
			id, err := c.ConnectUser(ctx, ConnectRequest{User: BSUID(testBSUID), OfferSDP: testSDP})
			if err == nil && id != callID {
				t.Errorf("call id %q", id)
			}
			return err
		}, "POST", testPNID + "/calls", nil,
			`{"messaging_product":"whatsapp","recipient":"` + testBSUID + `","action":"connect","session":{"sdp_type":"offer","sdp":` + sdp + `}}`},
		{"connect to both, with recording and transcription", func(ctx context.Context, c *Client) error {
			_, err := c.ConnectUser(ctx, ConnectRequest{User: User{Phone: "447700900123", BSUID: testParent}, OfferSDP: testSDP,
				BizOpaque: "t=1", Recording: rec, Transcription: tr})
			return err
		}, "POST", testPNID + "/calls", nil,
			`{"messaging_product":"whatsapp","to":"447700900123","recipient":"` + testParent + `","action":"connect","session":{"sdp_type":"offer","sdp":` + sdp + `},
			"biz_opaque_callback_data":"t=1","recording":{"status":"ENABLED","purpose":"quality assurance","announcement_language":"en_GB"},"transcription":{"status":"DISABLED"}}`},
		{"accept with recording", func(ctx context.Context, c *Client) error {
			return c.AcceptWith(ctx, AcceptRequest{CallID: callID, AnswerSDP: testSDP, Recording: rec})
		}, "POST", testPNID + "/calls", nil,
			`{"messaging_product":"whatsapp","action":"accept","call_id":"` + callID + `","session":{"sdp_type":"answer","sdp":` + sdp + `},
			"recording":{"status":"ENABLED","purpose":"quality assurance","announcement_language":"en_GB"}}`},
		{"permission request to a BSUID without body", func(ctx context.Context, c *Client) error {
			_, err := c.SendPermissionRequest(ctx, BSUID(testBSUID), "")
			return err
		}, "POST", testPNID + "/messages", nil,
			`{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"` + testBSUID + `","type":"interactive",
			"interactive":{"type":"call_permission_request","action":{"name":"call_permission_request"}}}`},
		{"permission template with parameters", func(ctx context.Context, c *Client) error {
			id, err := c.SendPermissionTemplate(ctx, User{Phone: "447700900123", BSUID: testBSUID},
				TemplateRef{Name: "call_permission", Language: "en_US"}, []string{"Ana", "order 1009"})
			if err == nil && id != "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgS" {
				t.Errorf("wamid %q", id)
			}
			return err
		}, "POST", testPNID + "/messages", nil,
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"447700900123","recipient":"` + testBSUID + `","type":"template",
			"template":{"name":"call_permission","language":{"code":"en_US"},"components":[{"type":"body","parameters":[
			{"type":"text","text":"Ana"},{"type":"text","text":"order 1009"}]}]}}`},
		{"permission template without parameters", func(ctx context.Context, c *Client) error {
			_, err := c.SendPermissionTemplate(ctx, Phone("447700900123"), TemplateRef{Name: "call_permission", Language: "en"}, nil)
			return err
		}, "POST", testPNID + "/messages", nil,
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"447700900123","type":"template",
			"template":{"name":"call_permission","language":{"code":"en"}}}`},
		{"create permission template", func(ctx context.Context, c *Client) error {
			info, err := c.CreatePermissionTemplate(ctx, testWABA, PermissionTemplate{Name: "call_permission", Language: "en_US",
				Category: CategoryUtility, BodyText: "Hi {{1}}, may we call you about {{2}}?", BodyExamples: []string{"Ana", "order 1009"},
				HeaderText: "Your order", FooterText: "Reply STOP to opt out"})
			if err == nil && info != (TemplateInfo{ID: "594425479261596", Status: "PENDING", Category: "UTILITY"}) {
				t.Errorf("info %+v", info)
			}
			return err
		}, "POST", testWABA + "/message_templates", nil,
			`{"name":"call_permission","language":"en_US","category":"UTILITY","components":[
			{"type":"HEADER","format":"TEXT","text":"Your order"},
			{"type":"BODY","text":"Hi {{1}}, may we call you about {{2}}?","example":{"body_text":[["Ana","order 1009"]]}},
			{"type":"FOOTER","text":"Reply STOP to opt out"},{"type":"call_permission_request"}]}`},
		{"call button defaults", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallButton(ctx, Phone("447700900123"), CallButton{BodyText: "Talk to us"})
			return err
		}, "POST", testPNID + "/messages", nil,
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"447700900123","type":"interactive",
			"interactive":{"type":"voice_call","body":{"text":"Talk to us"},"action":{"name":"voice_call","parameters":{"display_text":"Call Now","ttl_minutes":10080}}}}`},
		{"call button custom", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallButton(ctx, BSUID(testBSUID), CallButton{BodyText: "Talk to us", DisplayText: "Call support",
				TTLMinutes: 43200, Payload: "ticket=A-1009"})
			return err
		}, "POST", testPNID + "/messages", nil,
			`{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"` + testBSUID + `","type":"interactive",
			"interactive":{"type":"voice_call","body":{"text":"Talk to us"},"action":{"name":"voice_call","parameters":{"display_text":"Call support","ttl_minutes":43200,"payload":"ticket=A-1009"}}}}`},
		{"call_permissions by BSUID", func(ctx context.Context, c *Client) error {
			_, err := c.GetCallPermissions(ctx, BSUID(testParent))
			return err
		}, "GET", testPNID + "/call_permissions", url.Values{"recipient": {testParent}}, ""},
		{"call_permissions by both", func(ctx context.Context, c *Client) error {
			_, err := c.GetCallPermissions(ctx, User{Phone: "+447700900123", BSUID: testBSUID})
			return err
		}, "GET", testPNID + "/call_permissions", url.Values{"recipient": {testBSUID}, "user_wa_id": {"447700900123"}}, ""},
		{"phone number", func(ctx context.Context, c *Client) error {
			p, err := c.GetPhoneNumber(ctx)
			if err == nil && *p != (PhoneNumberInfo{ID: testPNID, DisplayPhoneNumber: "+44 7700 900000", VerifiedName: "Callgw Demo", QualityRating: "GREEN"}) {
				t.Errorf("info %+v", p)
			}
			return err
		}, "GET", testPNID, url.Values{"fields": {"display_phone_number,verified_name,quality_rating"}}, ""},
		{"call analytics", func(ctx context.Context, c *Client) error {
			_, err := c.CallAnalytics(ctx, testWABA, AnalyticsQuery{Start: start, End: end, Granularity: GranularityDaily,
				PhoneNumbers: []string{"447700900000"}, CountryCodes: []string{"GB", "IN"}, Directions: []string{"BUSINESS_INITIATED"},
				Dimensions: []string{"direction", "country", "phone"}, MetricTypes: []string{"COST", "COUNT", "AVERAGE_DURATION"}})
			return err
		}, "GET", testWABA, url.Values{"fields": {`call_analytics.start(1764374400).end(1764633600).granularity(DAILY)` +
			`.phone_numbers(["447700900000"]).country_codes(["GB","IN"]).directions(["BUSINESS_INITIATED"])` +
			`.dimensions(["direction","country","phone"]).metric_types(["COST","COUNT","AVERAGE_DURATION"])`}}, ""},
		{"pricing analytics", func(ctx context.Context, c *Client) error {
			_, err := c.PricingAnalytics(ctx, testWABA, AnalyticsQuery{Start: start, End: end, Granularity: GranularityMonthly,
				Dimensions: []string{"PRICING_CATEGORY", "COUNTRY"}, PricingCategories: []string{"MARKETING"}})
			return err
		}, "GET", testWABA, url.Values{"fields": {`pricing_analytics.start(1764374400).end(1764633600).granularity(MONTHLY)` +
			`.pricing_categories(["MARKETING"]).dimensions(["PRICING_CATEGORY","COUNTRY"])`}}, ""},
		{"full settings", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{Status: "ENABLED", CallIconVisibility: "DISABLE_ALL",
				CallIcons: &CallIcons{}, Audio: &AudioSettings{AdditionalCodecs: []string{"PCMA"}},
				SRTPKeyExchangeProtocol: "DTLS", SIP: json.RawMessage(`{"status":"DISABLED"}`),
				Restrictions: &Restrictions{List: []Restriction{{Type: "RESTRICTED_BUSINESS_INITIATED_CALLING"}}},
				CallHours: &CallHours{Status: "ENABLED", TimezoneID: "Europe/London",
					WeeklyOperatingHours: []OperatingHours{{DayOfWeek: "MONDAY", OpenTime: "0900", CloseTime: "1230"},
						{DayOfWeek: "MONDAY", OpenTime: "1230", CloseTime: "1800"}},
					HolidaySchedule: []Holiday{{Date: "2026-12-25", StartTime: "0000", EndTime: "2359"}}}}})
		}, "POST", testPNID + "/settings", nil,
			`{"calling":{"status":"ENABLED","call_icon_visibility":"DISABLE_ALL","call_icons":{"restrict_to_user_countries":[]},
			"call_hours":{"status":"ENABLED","timezone_id":"Europe/London","weekly_operating_hours":[
			{"day_of_week":"MONDAY","open_time":"0900","close_time":"1230"},{"day_of_week":"MONDAY","open_time":"1230","close_time":"1800"}],
			"holiday_schedule":[{"date":"2026-12-25","start_time":"0000","end_time":"2359"}]},
			"srtp_key_exchange_protocol":"DTLS","sip":{"status":"DISABLED"},"audio":{"additional_codecs":["PCMA"]}}}`},
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
			if r.Method != tc.method || r.Path != "/v23.0/"+tc.path {
				t.Errorf("request %s %s, want %s /v23.0/%s", r.Method, r.Path, tc.method, tc.path)
			}
			q, _ := url.ParseQuery(r.RawQuery)
			if len(q) != len(tc.query) || (len(q) > 0 && !reflect.DeepEqual(q, tc.query)) {
				t.Errorf("query\n got: %v\nwant: %v", q, tc.query)
			}
			if tc.body == "" {
				if r.Body != "" {
					t.Errorf("unexpected body %s", r.Body)
				}
				return
			}
			jsonEqual(t, r.Body, tc.body)
		})
	}
}

func TestValidateBSUID(t *testing.T) {
	tests := []struct {
		id     string
		ok     bool
		parent bool
	}{
		{"US.13491208655302741918", true, false},
		{"GB.abcDEF123", true, false},
		{"US.ENT.11815799212886844830", true, true},
		{"US." + strings.Repeat("9", 128), true, false},
		{"US." + strings.Repeat("9", 129), false, false},
		{"US.ENT." + strings.Repeat("a", 128), true, true},
		{"us.1349", false, false},
		{"USA.1349", false, false},
		{"US.", false, false},
		{"US.13-49", false, false},
		{"US.ENT.", false, false}, // "ENT." is not alphanumeric, and the parent form needs an id
		{"US 1349", false, false},
		{"XX.1349", false, false}, // not a country
		{"QQ.ENT.1349", false, false},
		{"XK.1349", true, false},
		{"13491208655302741918", false, false},
		{"", false, false},
		{"US.ENT.12.3", false, false},
		{"US.1349\n", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			err := ValidateBSUID(tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateBSUID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadInput) {
				t.Errorf("err %v is not ErrBadInput", err)
			}
			if tc.ok && IsParentBSUID(tc.id) != tc.parent {
				t.Errorf("IsParentBSUID = %v", !tc.parent)
			}
		})
	}
	if s := (User{Phone: "447700900123", BSUID: testBSUID}).String(); s != "********0123|GB.****1918" || strings.Contains(s, "1349") {
		t.Errorf("masked user %q", s)
	}
}

func TestNewBadInputSendsNothing(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	start, end := time.Unix(1764374400, 0), time.Unix(1764633600, 0)
	tests := []struct {
		name string
		call func(ctx context.Context, c *Client) error
	}{
		{"connect no user", func(ctx context.Context, c *Client) error {
			_, err := c.ConnectUser(ctx, ConnectRequest{OfferSDP: testSDP})
			return err
		}},
		{"connect lower-case BSUID", func(ctx context.Context, c *Client) error {
			_, err := c.ConnectUser(ctx, ConnectRequest{User: BSUID("gb.1349"), OfferSDP: testSDP})
			return err
		}},
		{"connect good BSUID, bad phone", func(ctx context.Context, c *Client) error {
			_, err := c.ConnectUser(ctx, ConnectRequest{User: User{Phone: "12", BSUID: testBSUID}, OfferSDP: testSDP})
			return err
		}},
		{"recording without purpose", func(ctx context.Context, c *Client) error {
			_, err := c.ConnectUser(ctx, ConnectRequest{User: BSUID(testBSUID), OfferSDP: testSDP, Recording: Enabled(" ", "en")})
			return err
		}},
		{"recording purpose 251 characters", func(ctx context.Context, c *Client) error {
			return c.AcceptWith(ctx, AcceptRequest{CallID: callID, AnswerSDP: testSDP, Recording: Enabled(strings.Repeat("é", 251), "fr")})
		}},
		{"transcription language not listed", func(ctx context.Context, c *Client) error {
			return c.AcceptWith(ctx, AcceptRequest{CallID: callID, AnswerSDP: testSDP, Transcription: Enabled("support", "ja")})
		}},
		{"recording bad status", func(ctx context.Context, c *Client) error {
			return c.AcceptWith(ctx, AcceptRequest{CallID: callID, AnswerSDP: testSDP, Recording: &MediaOpt{Status: "ON"}})
		}},
		{"permission request body too long", func(ctx context.Context, c *Client) error {
			_, err := c.SendPermissionRequest(ctx, BSUID(testBSUID), long(1025))
			return err
		}},
		{"template bad name", func(ctx context.Context, c *Client) error {
			_, err := c.SendPermissionTemplate(ctx, Phone("447700900123"), TemplateRef{Name: "Call Permission", Language: "en_US"}, nil)
			return err
		}},
		{"template empty parameter", func(ctx context.Context, c *Client) error {
			_, err := c.SendPermissionTemplate(ctx, Phone("447700900123"), TemplateRef{Name: "call_permission", Language: "en_US"}, []string{""})
			return err
		}},
		{"create template bad category", func(ctx context.Context, c *Client) error {
			_, err := c.CreatePermissionTemplate(ctx, testWABA, PermissionTemplate{Name: "x", Language: "en", Category: "AUTHENTICATION", BodyText: "hi"})
			return err
		}},
		{"create template placeholders without examples", func(ctx context.Context, c *Client) error {
			_, err := c.CreatePermissionTemplate(ctx, testWABA, PermissionTemplate{Name: "x", Language: "en", Category: CategoryMarketing, BodyText: "hi {{1}}"})
			return err
		}},
		{"create template placeholder gap", func(ctx context.Context, c *Client) error {
			_, err := c.CreatePermissionTemplate(ctx, testWABA, PermissionTemplate{Name: "x", Language: "en", Category: CategoryMarketing,
				BodyText: "hi {{2}}", BodyExamples: []string{"a"}})
			return err
		}},
		{"create template long header", func(ctx context.Context, c *Client) error {
			_, err := c.CreatePermissionTemplate(ctx, testWABA, PermissionTemplate{Name: "x", Language: "en", Category: CategoryMarketing,
				BodyText: "hi", HeaderText: long(61)})
			return err
		}},
		{"create template bad WABA", func(ctx context.Context, c *Client) error {
			_, err := c.CreatePermissionTemplate(ctx, "../me", PermissionTemplate{Name: "x", Language: "en", Category: CategoryMarketing, BodyText: "hi"})
			return err
		}},
		{"call button display text 21", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallButton(ctx, Phone("447700900123"), CallButton{BodyText: "hi", DisplayText: long(21)})
			return err
		}},
		{"call button ttl 43201", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallButton(ctx, Phone("447700900123"), CallButton{BodyText: "hi", TTLMinutes: 43201})
			return err
		}},
		{"call button ttl negative", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallButton(ctx, Phone("447700900123"), CallButton{BodyText: "hi", TTLMinutes: -1})
			return err
		}},
		{"call button payload 513", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallButton(ctx, Phone("447700900123"), CallButton{BodyText: "hi", Payload: long(513)})
			return err
		}},
		{"call button no body", func(ctx context.Context, c *Client) error {
			_, err := c.SendCallButton(ctx, Phone("447700900123"), CallButton{})
			return err
		}},
		{"permissions no user", func(ctx context.Context, c *Client) error { _, err := c.GetCallPermissions(ctx, User{}); return err }},
		{"analytics end before start", func(ctx context.Context, c *Client) error {
			_, err := c.CallAnalytics(ctx, testWABA, AnalyticsQuery{Start: end, End: start, Granularity: GranularityDaily})
			return err
		}},
		{"analytics bad granularity", func(ctx context.Context, c *Client) error {
			_, err := c.CallAnalytics(ctx, testWABA, AnalyticsQuery{Start: start, End: end, Granularity: "WEEKLY"})
			return err
		}},
		{"analytics bad direction", func(ctx context.Context, c *Client) error {
			_, err := c.CallAnalytics(ctx, testWABA, AnalyticsQuery{Start: start, End: end, Granularity: GranularityDaily, Directions: []string{"OUT"}})
			return err
		}},
		{"analytics injected keyword", func(ctx context.Context, c *Client) error {
			_, err := c.PricingAnalytics(ctx, testWABA, AnalyticsQuery{Start: start, End: end, Granularity: GranularityDaily, Dimensions: []string{`a"]).x(`}})
			return err
		}},
		{"settings overlapping slots", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{CallHours: &CallHours{Status: "ENABLED", TimezoneID: "Europe/London",
				WeeklyOperatingHours: []OperatingHours{{DayOfWeek: "MONDAY", OpenTime: "0900", CloseTime: "1300"},
					{DayOfWeek: "MONDAY", OpenTime: "1200", CloseTime: "1800"}}}}})
		}},
		{"settings bad icon visibility", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{CallIconVisibility: "HIDDEN"}})
		}},
		{"settings bad icon country", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{CallIcons: &CallIcons{RestrictToUserCountries: []string{"usa"}}}})
		}},
		{"settings bad codec", func(ctx context.Context, c *Client) error {
			return c.UpdateSettings(ctx, Settings{Calling: CallingSettings{Audio: &AudioSettings{AdditionalCodecs: []string{"G729"}}}})
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

// metaAcceptingOnce plays Meta for accept: the first attempt is applied
// (the call is accepted) and then the answer is lost (timeout or 5xx);
// later attempts get refusal.
func TestAcceptRetriedAfterItWasApplied(t *testing.T) {
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	bad502 := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }
	inProgress := func(w http.ResponseWriter) {
		writeGraphError(w, 400, CodeCallInProgress, "A call with this user is already ongoing", "")
	}
	alreadyText := func(w http.ResponseWriter) {
		writeGraphError(w, 400, 100, "Invalid parameter", "Call has already been accepted")
	}
	otherErr := func(w http.ResponseWriter) { writeGraphError(w, 400, CodeNoPermission, "nope", "") }
	tests := []struct {
		name    string
		first   func(w http.ResponseWriter, r *http.Request) // nil: the first attempt itself gets later's answer
		later   func(w http.ResponseWriter)
		ok      bool
		hits    int64
		timeout time.Duration
	}{
		{"timeout then 138003 is success", hang, inProgress, true, 2, 150 * time.Millisecond},
		{"502 then 138003 is success", bad502, inProgress, true, 2, 0},
		{"timeout then already-accepted text is success", hang, alreadyText, true, 2, 150 * time.Millisecond},
		{"timeout then another refusal is failure", hang, otherErr, false, 2, 150 * time.Millisecond},
		{"138003 on the first attempt is failure", nil, inProgress, false, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			applied := make(chan struct{}, 4)
			srv := newMetaServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				if n == 1 && tc.first != nil {
					applied <- struct{}{} // Meta accepted the call
					tc.first(w, r)
					return
				}
				tc.later(w)
			})
			c, _ := testClient(t, srv.URL, func(cfg *Config) {
				if tc.timeout > 0 {
					cfg.Timeout = tc.timeout
				}
			})
			err := c.AcceptWith(context.Background(), AcceptRequest{CallID: callID, AnswerSDP: testSDP})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if got := srv.hits.Load(); got != tc.hits {
				t.Errorf("%d attempts, want %d", got, tc.hits)
			}
			if tc.first != nil && len(applied) != 1 {
				t.Error("first attempt never reached Meta")
			}
			// The old signature has the same semantics.
			if tc.name == "502 then 138003 is success" {
				srv2 := newMetaServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
					if n == 1 {
						bad502(w, r)
						return
					}
					inProgress(w)
				})
				c2, _ := testClient(t, srv2.URL, nil)
				if err := c2.Accept(context.Background(), callID, testSDP, ""); err != nil {
					t.Errorf("Accept: %v", err)
				}
			}
		})
	}
}

func TestConnectTimeoutNeverRetried(t *testing.T) {
	for _, a := range []struct {
		name string
		call func(ctx context.Context, c *Client) error
	}{
		{"accept", func(ctx context.Context, c *Client) error { return c.Accept(ctx, callID, testSDP, "") }},
		{"pre_accept", func(ctx context.Context, c *Client) error { return c.PreAccept(ctx, callID, testSDP) }},
		{"connect", func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, "447700900123", testSDP, "")
			return err
		}},
	} {
		t.Run(a.name, func(t *testing.T) {
			srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
				writeGraphError(w, http.StatusInternalServerError, CodeConnectTimeout, "Connect timeout", "")
			})
			c, _ := testClient(t, srv.URL, nil)
			err := a.call(context.Background(), c)
			if !errors.Is(err, ErrConnectTimeout) {
				t.Fatalf("err = %v, want 138007", err)
			}
			if errors.Is(err, ErrOutcomeUnknown) {
				t.Error("138007 is Meta's definite answer, not an unknown outcome")
			}
			if srv.hits.Load() != 1 {
				t.Errorf("%d attempts: 138007 must never be retried", srv.hits.Load())
			}
		})
	}
	// 138004 (connection error, HTTP 500) is retried.
	srv := newMetaServer(t, failFirst(func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, http.StatusInternalServerError, CodeConnectionError, "Connection error", "")
	}))
	c, _ := testClient(t, srv.URL, nil)
	if err := c.Terminate(context.Background(), callID); err != nil || srv.hits.Load() != 2 {
		t.Errorf("138004: err %v after %d attempts, want success after 2", err, srv.hits.Load())
	}
}

func TestErrorTable(t *testing.T) {
	tests := []struct {
		code     int
		sentinel error
		retry    RetryPolicy
		yes      bool // Retryable
	}{
		{100, ErrInvalidParameter, RetryFixRequest, false},
		{613, ErrPermissionsRateLimit, RetryBackoff, true},
		{131009, ErrVoiceCallUnsupported, RetryNever, false},
		{131026, ErrUndeliverable, RetryNever, false},
		{131030, ErrRecipientNotAllowed, RetryNever, false},
		{131044, ErrNoPaymentMethod, RetryNever, false},
		{131047, ErrReengagement, RetryNever, false},
		{131055, ErrSIPEnabled, RetryNever, false},
		{131062, ErrBSUIDUnsupported, RetryNever, false},
		{138000, ErrCallingDisabled, RetryNever, false},
		{138001, ErrUserCannotReceive, RetryNever, false},
		{138002, ErrConcurrentLimit, RetryLater, true},
		{138003, ErrCallInProgress, RetryAfterCallEnds, false},
		{138004, ErrConnectionError, RetryBackoff, true},
		{138005, ErrRateLimited, RetryBackoff, true},
		{138006, ErrNoPermission, RetryRequestPermission, false},
		{138007, ErrConnectTimeout, RetryNewAttempt, false},
		{138008, ErrUndocumented138008, RetryNever, false},
		{138009, ErrRequestLimit, RetryAfterWindow, false},
		{138010, ErrUndocumented138010, RetryNever, false},
		{138011, ErrUndocumented138011, RetryNever, false},
		{138012, ErrConnectedCallLimit, RetryAtNextAllowed, false},
		{138013, ErrCountryUnavailable, RetryNever, false},
		{138014, ErrLowQuality, RetryAfterRestriction, false},
		{138015, ErrCannotEnable, RetryNever, false},
		{138016, ErrUndocumented138016, RetryNever, false},
		{138017, ErrPermanentExists, RetryTreatAsSuccess, false},
		{138018, ErrPrerequisitesMissing, RetryNever, false},
		{138019, ErrClientSetupFailed, RetryLater, true},
		{138020, ErrClientRelayFailed, RetryLater, true},
		{138021, ErrNoMedia, RetryFixMedia, false},
		{138022, ErrClientMediaFailed, RetryLater, true},
		{138023, ErrAcceptedNoMediaSignal, RetryReconcile, false},
	}
	if len(tests) != len(codes) {
		t.Errorf("%d codes in the table, %d tested", len(codes), len(tests))
	}
	for _, tc := range tests {
		t.Run(Code(tc.code).String(), func(t *testing.T) {
			e := error(&Error{HTTPStatus: 400, Code: tc.code})
			if !errors.Is(e, tc.sentinel) {
				t.Errorf("errors.Is(%d, sentinel) false", tc.code)
			}
			for _, o := range tests {
				if o.code != tc.code && errors.Is(e, o.sentinel) {
					t.Errorf("%d also matches %d", tc.code, o.code)
				}
			}
			if got := Code(tc.code).Retry(); got != tc.retry {
				t.Errorf("Retry = %v, want %v", got, tc.retry)
			}
			if Retryable(tc.code) != tc.yes {
				t.Errorf("Retryable = %v", !tc.yes)
			}
			if r := ReasonForCode(tc.code); strings.HasPrefix(r, "WhatsApp returned error") && !Code(tc.code).Undocumented() {
				t.Errorf("no specific reason: %q", r)
			}
			if Code(tc.code).TerminateOnly() != (tc.code >= 138019 && tc.code <= 138023) {
				t.Error("TerminateOnly wrong")
			}
		})
	}
	if r := ReasonForCode(CodeCountryUnavailable); !strings.Contains(r, "business phone number") || strings.Contains(r, "callee") {
		t.Errorf("138013 reason %q must be about the business number", r)
	}
	if Retryable(999) || Code(999).Retry() != RetryUnknown || Code(999).String() != "999" {
		t.Error("unknown code classified")
	}
	if RetryNewAttempt.String() != "new_attempt" || RetryPolicy(99).String() != "RetryPolicy(99)" {
		t.Error("RetryPolicy.String")
	}
}

func TestNextAllowed(t *testing.T) {
	want := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		code    int
		details string
		ok      bool
		want    time.Time
	}{
		{"rfc3339", 138012, "2026-11-30T10:00:00Z", true, want},
		{"rfc3339 offset", 138012, "2026-11-30T11:00:00+01:00", true, want},
		{"rfc3339 fraction", 138012, "2026-11-30T10:00:00.000Z", true, want},
		{"unix seconds", 138012, "1796032800", true, want},
		{"unix milliseconds", 138012, "1796032800000", true, want},
		{"space no zone", 138012, "2026-11-30 10:00:00", true, want},
		{"space with zone", 138012, "2026-11-30 12:00:00 +0200", true, want},
		{"space with UTC", 138012, "2026-11-30 10:00:00 UTC", true, want},
		{"T no zone", 138012, "2026-11-30T10:00:00", true, want},
		{"inside a sentence", 138012, "Next call allowed at 2026-11-30 10:00:00.", true, want},
		{"seconds in a sentence", 138012, "retry after 1796032800 (unix)", true, want},
		{"garbage", 138012, "try again tomorrow", false, time.Time{}},
		{"small number", 138012, "24", false, time.Time{}},
		{"empty", 138012, "", false, time.Time{}},
		{"other code", 138006, "2026-11-30T10:00:00Z", false, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := error(&Error{HTTPStatus: 400, Code: tc.code, Details: tc.details})
			got, ok := NextAllowed(err)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Errorf("NextAllowed = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := NextAllowed(errors.New("x")); ok {
		t.Error("plain error parsed")
	}
}

func TestParseMicros(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"0.1234", 123400, true},
		{"1.05", 1050000, true},
		{"12", 12000000, true},
		{"0.000001", 1, true},
		{"0.0000005", 1, true}, // half rounds away from zero
		{"0.0000004", 0, true},
		{"-0.0000005", -1, true},
		{"0.1", 100000, true},  // no float: 0.1 is exact
		{"0.29", 290000, true}, // 0.29*1e6 as float is 289999.99999999994
		{"1.5e-3", 1500, true},
		{"0.0035e1", 35000, true},
		{".5", 500000, true},
		{"5.", 5000000, true},
		{"-2.25", -2250000, true},
		{"9223372036854.775807", 9223372036854775807, true},
		{"9223372036854.775808", 0, false},
		{"", 0, false},
		{"abc", 0, false},
		{"1,05", 0, false},
		{"0x10", 0, false},
		{"1/3", 0, false},
		{"NaN", 0, false},
		{"1e", 0, false},
		{"1e1000", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMicros(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseMicros(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadAmount) {
				t.Errorf("err %v is not ErrBadAmount", err)
			}
		})
	}
}

func TestParseTemplateRef(t *testing.T) {
	tests := []struct {
		in   string
		want TemplateRef
		ok   bool
	}{
		{"call_permission:en_US", TemplateRef{"call_permission", "en_US"}, true},
		{" call_permission:pt_BR ", TemplateRef{"call_permission", "pt_BR"}, true},
		{"callme2:en", TemplateRef{"callme2", "en"}, true},
		{"call_permission:es_419", TemplateRef{"call_permission", "es_419"}, true},
		{"call_permission", TemplateRef{}, false},
		{"call_permission:", TemplateRef{}, false},
		{":en_US", TemplateRef{}, false},
		{"Call-Permission:en_US", TemplateRef{}, false},
		{"call_permission:english", TemplateRef{}, false},
		{"a:b:c", TemplateRef{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTemplateRef(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseTemplateRef(%q) = %+v, %v", tc.in, got, err)
			}
			if err != nil && (!errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "en_US")) && tc.in == "call_permission" {
				t.Errorf("unclear error %v", err)
			}
		})
	}
	if s := (TemplateRef{"call_permission", "en_US"}).String(); s != "call_permission:en_US" {
		t.Errorf("String %q", s)
	}
}

func TestSettingsLenientDecoding(t *testing.T) {
	body := `{"calling":{"status":"ENABLED","call_icon_visibility":"SOMETHING_NEW","call_icons":{"restrict_to_user_countries":["US","BR"]},
	"call_hours":{"status":"ENABLED","timezone_id":"America/Sao_Paulo","weekly_operating_hours":[],
	  "holiday_schedule":[{"date":"2026-12-25","open_time":"0000","close_time":"2359"}]},
	"sip":{"status":"DISABLED","servers":[{"hostname":"sip.example.com","port":"5061","request_uri_user_params":{"tgrp":"wa"}}]},
	"srtp_key_exchange_protocol":"DTLS","audio":{"additional_codecs":["PCMA","PCMU"]},
	"restrictions":{"restrictions_list":[{"type":"RESTRICTED_BUSINESS_INITIATED_CALLING","reason":"LOW_QUALITY","expiration":"1765000000"},
	  {"type":"OTHER","expiration":1765000001},{"type":"ODD","expiration":"next week"}]},
	"future_field":{"x":1}}}`
	srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			okFor(w, r)
			return
		}
		writeJSON(w, 200, body)
	})
	c, _ := testClient(t, srv.URL, nil)
	s, err := c.GetSettings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cs := s.Calling
	if cs.CallIconVisibility != "SOMETHING_NEW" || !reflect.DeepEqual(cs.CallIcons.RestrictToUserCountries, []string{"US", "BR"}) ||
		!reflect.DeepEqual(cs.Audio.AdditionalCodecs, []string{"PCMA", "PCMU"}) {
		t.Errorf("settings %+v", cs)
	}
	if h := cs.CallHours.HolidaySchedule[0]; h != (Holiday{Date: "2026-12-25", StartTime: "0000", EndTime: "2359"}) {
		t.Errorf("holiday read from open_time/close_time: %+v", h)
	}
	rl := cs.Restrictions.List
	if len(rl) != 3 || !rl[0].ExpiresAt().Equal(time.Unix(1765000000, 0)) || !rl[1].ExpiresAt().Equal(time.Unix(1765000001, 0)) ||
		!rl[2].ExpiresAt().IsZero() || rl[0].Reason != "LOW_QUALITY" {
		t.Errorf("restrictions %+v", rl)
	}
	sip, err := cs.ParseSIP()
	if err != nil || sip.Status != "DISABLED" || len(sip.Servers) != 1 || int(sip.Servers[0].Port) != 5061 ||
		sip.Servers[0].RequestURIUserParams["tgrp"] != "wa" {
		t.Errorf("sip %+v %v", sip, err)
	}
	if !strings.Contains(string(cs.Raw), "future_field") {
		t.Error("raw calling object not kept")
	}
	// Writing back what we read drops the read-only restrictions and sends
	// holidays with start_time/end_time.
	cs.CallIconVisibility = "DEFAULT"
	if err := c.UpdateSettings(context.Background(), Settings{Calling: cs}); err != nil {
		t.Fatal(err)
	}
	sent := srv.requests()[1].Body
	if strings.Contains(sent, "restrictions") || strings.Contains(sent, "open_time\":\"0000") || !strings.Contains(sent, `"start_time":"0000"`) {
		t.Errorf("POST body %s", sent)
	}
}

func TestAnalyticsDecoding(t *testing.T) {
	srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { okFor(w, r) })
	c, _ := testClient(t, srv.URL, nil)
	q := AnalyticsQuery{Start: time.Unix(1764374400, 0), End: time.Unix(1764633600, 0), Granularity: GranularityDaily}
	ca, err := c.CallAnalytics(context.Background(), testWABA, q)
	if err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Unix(1764374400+int64(d)*86400, 0).UTC() }
	want := []CallDataPoint{
		{Start: day(0), End: day(1), Direction: "BUSINESS_INITIATED", Country: "GB", PhoneNumber: "447700900000",
			CostMicros: 123400, Count: 12, AverageDuration: 95, HasCost: true, HasCount: true, HasDuration: true},
		{Start: day(1), End: day(2), Direction: "BUSINESS_INITIATED", Country: "IN", PhoneNumber: "447700900000",
			CostMicros: 1050000, Count: 3, AverageDuration: 40, HasCost: true, HasCount: true, HasDuration: true},
		{Start: day(2), End: day(3), Direction: "USER_INITIATED", Country: "BR", Count: 7, HasCount: true},
	}
	if ca.Granularity != "DAILY" || !reflect.DeepEqual(ca.DataPoints, want) {
		t.Errorf("call analytics\n got %+v\nwant %+v", ca.DataPoints, want)
	}
	pa, err := c.PricingAnalytics(context.Background(), testWABA, q)
	if err != nil {
		t.Fatal(err)
	}
	wantP := []PricingDataPoint{
		{Start: day(0), End: day(1), Country: "GB", PricingType: "REGULAR", PricingCategory: "MARKETING", Volume: 10, CostMicros: 505200, HasCost: true},
		{Start: day(0), End: day(1), Country: "GB", PricingType: "FREE_CUSTOMER_SERVICE", PricingCategory: "SERVICE", Volume: 4, CostMicros: 0, HasCost: true},
		{Start: day(0), End: day(1), Country: "IN", PricingType: "REGULAR", PricingCategory: "UTILITY", Tier: "0:100000", Volume: 25, CostMicros: 35000, HasCost: true},
	}
	if !reflect.DeepEqual(pa.DataPoints, wantP) {
		t.Errorf("pricing analytics\n got %+v\nwant %+v", pa.DataPoints, wantP)
	}

	tests := []struct {
		name string
		body string
		bad  error
	}{
		{"garbage cost", `{"call_analytics":{"data_points":[{"start":1,"end":2,"cost":"12,5"}]}}`, ErrBadAmount},
		{"cost object", `{"call_analytics":{"data_points":[{"start":1,"end":2,"cost":{"amount":1}}]}}`, ErrBadAmount},
		{"fractional count", `{"call_analytics":{"data_points":[{"start":1,"end":2,"count":1.5}]}}`, ErrUnexpectedResponse},
		{"not an object", `{"call_analytics":[1,2]}`, ErrUnexpectedResponse},
		{"no data", `{"id":"102290129340398"}`, nil},
		{"data wrapper", `{"call_analytics":{"data":[{"data_points":[{"start":1764374400,"end":1764460800,"cost":2}]}]}}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMetaServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, tc.body) })
			c, _ := testClient(t, srv.URL, nil)
			got, err := c.CallAnalytics(context.Background(), testWABA, q)
			if tc.bad == nil {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				if tc.name == "data wrapper" && (len(got.DataPoints) != 1 || got.DataPoints[0].CostMicros != 2000000) {
					t.Errorf("points %+v", got.DataPoints)
				}
				return
			}
			if !errors.Is(err, tc.bad) {
				t.Errorf("err = %v, want %v", err, tc.bad)
			}
		})
	}
}
