package webhook

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
)

const fixtureDir = "../../testdata/webhooks"

const (
	wabaID  = "102290129340398"
	pnID    = "106540352242922"
	display = "15551441906"
	callID1 = "wacid.HBgLOTE3MzU4NTgwMTgwFQIAEhggQTdFMkQzRjlCMEM4NEU1NkE5QjE2QzAxRDJFRjQ1NzgcGAsxNTU1MTQ0MTkwNhUCABUCAA=="
	callID2 = "wacid.HBgMNDQ3NzAwOTAwMTIzFQIAEhggMzlDRjFBMkI0RTVGNjA3MTgyOTNBNEI1QzZEN0U4RjkcGAsxNTU1MTQ0MTkwNhUCABUCAA=="
	user1   = "917358580180"
	user2   = "447700900123"
	wamid   = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQjA3RDQ1RjZBMUMyRTNCNDU2AA=="
)

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	return b
}

func base(name string) Event {
	return Event{WABAID: wabaID, PhoneNumberID: pnID, DisplayPhoneNumber: display, ContactName: name}
}

// check is what a fixture must parse to; sdp fields are checked separately
// for length to keep the table readable.
type fixtureCase struct {
	file string
	want []Event
}

func fixtureCases() []fixtureCase {
	wamidT := strings.Replace(wamid, "ERgS", "ERgT", 1)
	withCall := func(e Event, c CallEvent) Event { e.Call = &c; return e }
	withStatus := func(e Event, s StatusEvent) Event { e.Status = &s; return e }
	withPerm := func(e Event, p PermissionReply) Event { e.Permission = &p; return e }
	return []fixtureCase{
		{"connect_offer.json", []Event{withCall(base("Priya Raman"), CallEvent{
			CallID: callID1, Event: CallConnect, EventName: "connect", Direction: call.UserInitiated,
			From: user1, To: display, Timestamp: unix(1760681506), SDPType: "offer", SDP: "<offer>",
			Duration: -1, DeeplinkPayload: "spring-campaign"})}},
		{"connect_answer_business.json", []Event{withCall(base("Oliver Hughes"), CallEvent{
			CallID: callID2, Event: CallConnect, EventName: "connect", Direction: call.BusinessInitiated,
			From: display, To: user2, Timestamp: unix(1760681512), SDPType: "answer", SDP: "<answer>",
			Duration: -1, BizOpaque: "agent=42;ticket=A-1009"})}},
		{"terminate_completed.json", []Event{withCall(base("Priya Raman"), CallEvent{
			CallID: callID1, Event: CallTerminate, EventName: "terminate", Direction: call.UserInitiated,
			From: user1, To: display, Timestamp: unix(1760681690), Status: "COMPLETED",
			StartTime: unix(1760681510), EndTime: unix(1760681690), Duration: 190, DurationMismatch: true,
			DeeplinkPayload: "spring-campaign"})}},
		{"terminate_failed_138021.json", []Event{withCall(base("Oliver Hughes"), CallEvent{
			CallID: callID2, Event: CallTerminate, EventName: "terminate", Direction: call.BusinessInitiated,
			From: display, To: user2, Timestamp: unix(1760681560), Status: "FAILED", Duration: -1,
			BizOpaque: "agent=42;ticket=A-1009",
			Errors: []MetaError{{Code: 138021, Title: "Call ended due to no media", Message: "Call ended due to no media",
				Details: "The WhatsApp client ended the call since it was not receiving any media for a long time"}}})}},
		{"status_ringing.json", []Event{withStatus(base(""), StatusEvent{
			CallID: callID2, Status: StatusRinging, StatusName: "RINGING", Timestamp: unix(1760681510),
			RecipientID: user2, BizOpaque: "agent=42;ticket=A-1009"})}},
		{"status_accepted_lowercase.json", []Event{withStatus(base(""), StatusEvent{
			CallID: callID2, Status: StatusAccepted, StatusName: "accepted", Timestamp: unix(1760681514), RecipientID: user2})}},
		{"status_rejected.json", []Event{withStatus(base("Oliver Hughes"), StatusEvent{
			CallID: callID2, Status: StatusRejected, StatusName: "REJECTED", Timestamp: unix(1760681519), RecipientID: user2})}},
		{"permission_accept_temporary.json", []Event{withPerm(base("Oliver Hughes"), PermissionReply{
			From: user2, MessageID: wamidT, Timestamp: unix(1760681600), Accepted: true,
			ExpiresAt: unix(1761286400), Source: "user_action", ContextID: wamid})}},
		{"permission_accept_string_expiry.json", []Event{withPerm(base("Oliver Hughes"), PermissionReply{
			From: user2, MessageID: wamidT, Timestamp: unix(1760681600), Accepted: true,
			ExpiresAt: unix(1761286400), Source: "user_action", ContextID: wamid})}},
		{"permission_permanent.json", []Event{withPerm(base("Oliver Hughes"), PermissionReply{
			From: user2, MessageID: wamidT, Timestamp: unix(1760681600), Accepted: true, Permanent: true,
			Source: "user_action"})}},
		{"permission_reject_automatic.json", []Event{withPerm(base("Oliver Hughes"), PermissionReply{
			From: user2, MessageID: wamidT, Timestamp: unix(1760800000), Source: "automatic"})}},
		{"permission_callback_automatic.json", []Event{withPerm(base("Priya Raman"), PermissionReply{
			From: user1, MessageID: wamidT, Timestamp: unix(1760681506), Accepted: true,
			ExpiresAt: unix(1761286306), Source: "automatic", ContextID: callID1})}},
		{"batch_multi.json", []Event{
			withCall(base("Priya Raman"), CallEvent{CallID: callID1, Event: CallConnect, EventName: "connect",
				Direction: call.UserInitiated, From: user1, To: display, Timestamp: unix(1760681506),
				SDPType: "offer", SDP: "<offer>", Duration: -1}),
			withCall(base("Oliver Hughes"), CallEvent{CallID: callID2, Event: CallTerminate, EventName: "terminate",
				Direction: call.BusinessInitiated, From: display, To: user2, Timestamp: unix(1760681700),
				Status: "COMPLETED", StartTime: unix(1760681600), EndTime: unix(1760681700), Duration: 100}),
			withStatus(base("Oliver Hughes"), StatusEvent{CallID: callID2, Status: StatusRinging, StatusName: "RINGING",
				Timestamp: unix(1760681590), RecipientID: user2}),
			{WABAID: wabaID, PhoneNumberID: pnID, DisplayPhoneNumber: display, ContactName: "Oliver Hughes",
				Unknown: &UnknownEvent{Field: "messages", Type: "status:message", Raw: []byte("<raw>")}},
			withPerm(base("Oliver Hughes"), PermissionReply{From: user2, MessageID: strings.Replace(wamid, "ERgS", "ERgU", 1),
				Timestamp: unix(1760681601), Accepted: true, ExpiresAt: unix(1761286401), Source: "user_action", ContextID: wamid}),
			{WABAID: "209912345678901", PhoneNumberID: "301234567890123", DisplayPhoneNumber: "447450000001",
				Status: &StatusEvent{CallID: "wacid.SECONDWABA", Status: StatusRejected, StatusName: "REJECTED",
					Timestamp: unix(1760681620), RecipientID: "34600111222"}},
		}},
		{"unknown_field.json", []Event{
			{WABAID: wabaID, Unknown: &UnknownEvent{Field: "account_update", Raw: []byte("<raw>")}},
			{WABAID: wabaID, PhoneNumberID: pnID, DisplayPhoneNumber: display, Unknown: &UnknownEvent{Field: "calls", Type: "errors",
				Raw:    []byte("<raw>"),
				Errors: []MetaError{{Code: 131000, Title: "Something went wrong", Message: "Something went wrong", Details: "Unknown error"}}}},
			withCall(base(""), CallEvent{CallID: callID1, Event: CallEventUnknown, EventName: "hold",
				Direction: call.UserInitiated, From: user1, To: display, Timestamp: unix(1760681520), Duration: -1}),
		}},
		{"username_user.json", []Event{withCall(base("night.owl"), CallEvent{
			CallID: strings.Replace(callID1, "OTE3", "OTE4", 1), Event: CallConnect, EventName: "connect",
			Direction: call.UserInitiated, FromUserID: "US.13491208655302741918", To: display,
			Timestamp: unix(1760682000), SDPType: "offer", SDP: "<offer>", Duration: -1})}},
		{"message_text.json", []Event{{WABAID: wabaID, PhoneNumberID: pnID, DisplayPhoneNumber: display, ContactName: "Oliver Hughes",
			Unknown: &UnknownEvent{Field: "messages", Type: "message:text", Raw: []byte("<raw>")}}}},
	}
}

// normalise replaces SDPs and raw JSON by placeholders after checking them.
func normalise(t *testing.T, body []byte, evs []Event) []Event {
	t.Helper()
	out := make([]Event, len(evs))
	for i, e := range evs {
		if e.Call != nil && e.Call.SDP != "" {
			c := *e.Call
			if !strings.HasPrefix(c.SDP, "v=0\r\n") || !strings.Contains(c.SDP, "a=mid:audio\r\n") {
				t.Errorf("event %d: SDP not decoded verbatim: %.40q", i, c.SDP)
			}
			c.SDP = "<" + c.SDPType + ">"
			e.Call = &c
		}
		if e.Unknown != nil && e.Unknown.Raw != nil {
			u := *e.Unknown
			if !bytes.Contains(body, u.Raw) {
				t.Errorf("event %d: Unknown.Raw is not a slice of the body", i)
			}
			u.Raw = []byte("<raw>")
			e.Unknown = &u
		}
		out[i] = e
	}
	return out
}

func TestParseFixtures(t *testing.T) {
	cases := fixtureCases()
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			body := readFixture(t, tc.file)
			b, err := Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for i, e := range b.Events {
				if n := setCount(e); n != 1 {
					t.Errorf("event %d has %d kinds set, want 1", i, n)
				}
			}
			got := normalise(t, body, b.Events)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("events differ\n got: %s\nwant: %s", dump(got), dump(tc.want))
			}
		})
	}
	// Every fixture on disk must be in the table.
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("fixture %s has no expectation in the table", filepath.Base(f))
		}
	}
}

func TestParseOfferSDPIsMetaShaped(t *testing.T) {
	b, err := Parse(readFixture(t, "connect_offer.json"))
	if err != nil {
		t.Fatal(err)
	}
	sdp := b.Events[0].Call.SDP
	for _, want := range []string{"a=ice-lite", "a=setup:actpass", "a=mid:audio", "a=group:BUNDLE audio",
		"a=rtpmap:111 opus/48000/2", "a=rtpmap:126 telephone-event/8000", "a=ptime:20", "typ host"} {
		if !strings.Contains(sdp, want) {
			t.Errorf("offer SDP lacks %q", want)
		}
	}
}

func setCount(e Event) int {
	n := 0
	if e.Call != nil {
		n++
	}
	if e.Status != nil {
		n++
	}
	if e.Permission != nil {
		n++
	}
	if e.Unknown != nil {
		n++
	}
	return n
}

func dump(evs []Event) string {
	var sb strings.Builder
	for _, e := range evs {
		sb.WriteString("\n  ")
		sb.WriteString(strings.TrimSpace(strings.ReplaceAll(
			strings.ReplaceAll(sprintEvent(e), "\n", " "), "  ", " ")))
	}
	return sb.String()
}

func sprintEvent(e Event) string {
	s := "{" + e.WABAID + " " + e.PhoneNumberID + " " + e.DisplayPhoneNumber + " " + e.ContactName + " "
	switch {
	case e.Call != nil:
		s += "Call:" + sprint(*e.Call)
	case e.Status != nil:
		s += "Status:" + sprint(*e.Status)
	case e.Permission != nil:
		s += "Permission:" + sprint(*e.Permission)
	case e.Unknown != nil:
		s += "Unknown:" + sprint(*e.Unknown)
	}
	return s + "}"
}

func TestParseTolerance(t *testing.T) {
	wrap := func(field, value string) []byte {
		return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"` + field + `","value":` + value + `}]}]}`)
	}
	tests := []struct {
		name  string
		body  []byte
		check func(t *testing.T, b *Batch)
	}{
		{"numeric timestamp and string duration", wrap("calls", `{"calls":[{"id":"wacid.1","event":"terminate","timestamp":1760681506,"start_time":1760681500,"end_time":"1760681506","duration":"6","status":"completed"}]}`),
			func(t *testing.T, b *Batch) {
				c := b.Events[0].Call
				if !c.Timestamp.Equal(unix(1760681506)) || c.Duration != 6 || c.DurationMismatch || c.Status != "COMPLETED" {
					t.Errorf("got %+v", c)
				}
			}},
		{"null and empty timestamps are zero", wrap("calls", `{"calls":[{"id":"wacid.1","event":"connect","timestamp":null,"start_time":"","duration":null}]}`),
			func(t *testing.T, b *Batch) {
				c := b.Events[0].Call
				if !c.Timestamp.IsZero() || !c.StartTime.IsZero() || c.Duration != -1 || c.Direction != call.DirectionUnknown {
					t.Errorf("got %+v", c)
				}
			}},
		{"duration without times is not a mismatch", wrap("calls", `{"calls":[{"id":"wacid.1","event":"terminate","duration":30}]}`),
			func(t *testing.T, b *Batch) {
				if c := b.Events[0].Call; c.Duration != 30 || c.DurationMismatch {
					t.Errorf("got %+v", c)
				}
			}},
		{"status without type in calls field is a call status", wrap("calls", `{"statuses":[{"id":"wacid.1","status":"Ringing"}]}`),
			func(t *testing.T, b *Batch) {
				if s := b.Events[0].Status; s == nil || s.Status != StatusRinging {
					t.Errorf("got %+v", b.Events[0])
				}
			}},
		{"unknown call status", wrap("calls", `{"statuses":[{"id":"wacid.1","type":"call","status":"RINGING_TWICE"}]}`),
			func(t *testing.T, b *Batch) {
				if s := b.Events[0].Status; s == nil || s.Status != StatusUnknown || s.StatusName != "RINGING_TWICE" {
					t.Errorf("got %+v", b.Events[0])
				}
			}},
		{"other interactive type is unknown", wrap("messages", `{"messages":[{"from":"1","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"x"}}}]}`),
			func(t *testing.T, b *Batch) {
				if u := b.Events[0].Unknown; u == nil || u.Type != "message:interactive:button_reply" {
					t.Errorf("got %+v", b.Events[0])
				}
			}},
		{"string is_permanent and upper-case response", wrap("messages", `{"messages":[{"from":"1","id":"wamid.9","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"ACCEPT","is_permanent":"true","response_source":"USER_ACTION"}}}]}`),
			func(t *testing.T, b *Batch) {
				p := b.Events[0].Permission
				if p == nil || !p.Accepted || !p.Permanent || p.Source != "user_action" || p.ContextID != "" {
					t.Errorf("got %+v", b.Events[0])
				}
			}},
		{"empty value is kept as unknown", wrap("calls", `{}`),
			func(t *testing.T, b *Batch) {
				if len(b.Events) != 1 || b.Events[0].Unknown == nil || b.Events[0].Unknown.Field != "calls" {
					t.Errorf("got %+v", b.Events)
				}
			}},
		{"null value is kept as unknown", wrap("calls", `null`),
			func(t *testing.T, b *Batch) {
				if len(b.Events) != 1 || b.Events[0].Unknown == nil {
					t.Errorf("got %+v", b.Events)
				}
			}},
		{"empty entry list", []byte(`{"object":"whatsapp_business_account","entry":[]}`),
			func(t *testing.T, b *Batch) {
				if len(b.Events) != 0 {
					t.Errorf("got %+v", b.Events)
				}
			}},
		{"error code as string", wrap("calls", `{"calls":[{"id":"wacid.1","event":"terminate","errors":[{"code":"138021"}]}]}`),
			func(t *testing.T, b *Batch) {
				if e := b.Events[0].Call.Errors; len(e) != 1 || e[0].Code != 138021 {
					t.Errorf("got %+v", e)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse(tc.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(b.Events) == 0 && tc.name != "empty entry list" {
				t.Fatal("no events")
			}
			tc.check(t, b)
		})
	}
}

func TestParseThousandUpdates(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(`{"object":"whatsapp_business_account","entry":[`)
	for i := range 10 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"id":"1","changes":[`)
		for j := range 10 {
			if j > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(`{"field":"calls","value":{"statuses":[`)
			for k := range 10 {
				if k > 0 {
					sb.WriteString(",")
				}
				sb.WriteString(`{"id":"wacid.` + string(rune('a'+i)) + string(rune('a'+j)) + string(rune('a'+k)) + `","type":"call","status":"RINGING","timestamp":"1760681510"}`)
			}
			sb.WriteString(`]}}`)
		}
		sb.WriteString(`]}`)
	}
	sb.WriteString(`]}`)
	b, err := Parse([]byte(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 1000 {
		t.Fatalf("got %d events, want 1000", len(b.Events))
	}
	if b.Events[0].Status.CallID != "wacid.aaa" || b.Events[999].Status.CallID != "wacid.jjj" || b.Events[123].Status.CallID != "wacid.bcd" {
		t.Errorf("order not preserved: %s %s %s", b.Events[0].Status.CallID, b.Events[123].Status.CallID, b.Events[999].Status.CallID)
	}
}

func TestParseErrors(t *testing.T) {
	wrap := func(value string) string {
		return `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"calls","value":` + value + `}]}]}`
	}
	tests := []struct {
		name    string
		body    string
		want    error
		wantMsg string
	}{
		{"empty body", ``, ErrMalformed, "unexpected end"},
		{"not json", `hello`, ErrMalformed, "invalid character"},
		{"trailing garbage", `{"object":"whatsapp_business_account","entry":[]}x`, ErrMalformed, "invalid character"},
		{"array", `[]`, ErrMalformed, "cannot unmarshal"},
		{"wrong object", `{"object":"page","entry":[]}`, ErrMalformed, `object "page"`},
		{"no entry", `{"object":"whatsapp_business_account"}`, ErrMalformed, "no entry"},
		{"entry not array", `{"object":"whatsapp_business_account","entry":{}}`, ErrMalformed, "cannot unmarshal"},
		{"timestamp object", wrap(`{"calls":[{"id":"a","timestamp":{}}]}`), ErrMalformed, "entry[0].changes[0]: calls[0]"},
		{"timestamp not a number", wrap(`{"calls":[{"id":"a","timestamp":"yesterday"}]}`), ErrMalformed, "not an integer"},
		{"timestamp fraction", wrap(`{"calls":[{"id":"a","timestamp":1.5}]}`), ErrMalformed, "not an integer"},
		{"negative epoch", wrap(`{"calls":[{"id":"a","end_time":-5}]}`), ErrMalformed, "out of range"},
		{"huge epoch", wrap(`{"calls":[{"id":"a","end_time":99999999999999}]}`), ErrMalformed, "out of range"},
		{"calls not array", wrap(`{"calls":{}}`), ErrMalformed, "cannot unmarshal"},
		{"status item not object", wrap(`{"statuses":[7]}`), ErrMalformed, "statuses[0]"},
		{"bad is_permanent", `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"is_permanent":"maybe"}}}]}}]}]}`, ErrMalformed, "not a boolean"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse([]byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if b != nil {
				t.Errorf("batch %+v returned with an error", b)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err %q lacks %q", err, tc.wantMsg)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		body := make([]byte, MaxBodyBytes+1)
		if _, err := Parse(body); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
}

func TestParseDoesNotAliasBody(t *testing.T) {
	body := readFixture(t, "message_text.json")
	b, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(b.Events[0].Unknown.Raw)
	for i := range body {
		body[i] = 'x'
	}
	if string(b.Events[0].Unknown.Raw) != raw {
		t.Error("Unknown.Raw changed when the body buffer was reused")
	}
}

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"connect", CallConnect.String(), "connect"},
		{"terminate", CallTerminate.String(), "terminate"},
		{"unknown event", CallEventUnknown.String(), "unknown"},
		{"out of range event", CallEventType(99).String(), "unknown"},
		{"ringing", StatusRinging.String(), "ringing"},
		{"accepted", StatusAccepted.String(), "accepted"},
		{"rejected", StatusRejected.String(), "rejected"},
		{"out of range status", CallStatus(42).String(), "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}
