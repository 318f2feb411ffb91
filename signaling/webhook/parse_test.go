package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
)

const (
	wabaID  = "102290129340398"
	pnID    = "106540352242922"
	display = "15551441906"
	callID1 = "wacid.HBgLOTE3MzU4NTgwMTgwFQIAEhggQTdFMkQzRjlCMEM4NEU1NkE5QjE2QzAxRDJFRjQ1NzgcGAsxNTU1MTQ0MTkwNhUCABUCAA=="
	callID2 = "wacid.HBgMNDQ3NzAwOTAwMTIzFQIAEhggMzlDRjFBMkI0RTVGNjA3MTgyOTNBNEI1QzZEN0U4RjkcGAsxNTU1MTQ0MTkwNhUCABUCAA=="
	callID3 = "wacid.HBgLMTIxODU1NTI4MjgVAgASGCBGOTQ2QTNBRTYxRDc0N0RCQjAwQjIwNkE3MEEzQjI2QxwYCzE1NTUxNDQxOTA2FQIAFQIA"
	user1   = "917358580180"
	user2   = "447700900123"
	user3   = "12185552828"
	bsuid1  = "US.13491208655302741918"
	parent1 = "US.ENT.11815799212886844830"
	bsuid2  = "GB.12388776655443322110"
	wamid   = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQjA3RDQ1RjZBMUMyRTNCNDU2AA=="
)

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// eq reports a field that differs; name says which.
func eq[T comparable](t *testing.T, name string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func codes(es []MetaError) []int {
	var out []int
	for _, e := range es {
		out = append(out, e.Code)
	}
	return out
}

// TestParseFixtureFacts states, by hand and independently of the golden
// files, what each fixture must yield: the variants the reference warns
// about. The golden test checks everything else.
func TestParseFixtureFacts(t *testing.T) {
	tests := []struct {
		file   string
		events int
		check  func(t *testing.T, evs []Event)
	}{
		{"connect_offer.json", 1, func(t *testing.T, evs []Event) {
			e := evs[0]
			c := e.Call
			eq(t, "event", c.Event, CallConnect)
			eq(t, "direction", c.Direction, call.UserInitiated)
			eq(t, "guessed", c.DirectionGuessed, false)
			eq(t, "from", c.From, user1)
			eq(t, "sdp type", c.SDPType, "offer")
			eq(t, "deeplink", c.DeeplinkPayload, "spring-campaign")
			eq(t, "duration", c.Duration, int64(-1))
			eq(t, "contact", e.ContactName, "Priya Raman")
			eq(t, "waba", e.WABAID, wabaID)
			eq(t, "pn", e.PhoneNumberID, pnID)
			eq(t, "display", e.DisplayPhoneNumber, display)
			eq(t, "field", e.Field, "calls")
			eq(t, "event ts", e.Timestamp, unix(1760681506))
		}},
		{"connect_no_direction.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "direction", c.Direction, call.UserInitiated)
			eq(t, "guessed", c.DirectionGuessed, true)
			eq(t, "user id", c.UserID(), bsuid1)
		}},
		{"connect_answer_business.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "direction", c.Direction, call.BusinessInitiated)
			eq(t, "sdp type", c.SDPType, "answer")
			eq(t, "user", c.UserNumber(), user2)
			eq(t, "integer timestamp", c.Timestamp, unix(1760681512))
			eq(t, "opaque", c.BizOpaque, "agent=42;ticket=A-1009")
		}},
		{"bic_connect_bsuid_no_to.json", 1, func(t *testing.T, evs []Event) {
			e := evs[0]
			c := e.Call
			eq(t, "direction", c.Direction, call.BusinessInitiated)
			eq(t, "to", c.To, "")
			eq(t, "user number", c.UserNumber(), "")
			eq(t, "user id", c.UserID(), bsuid1)
			eq(t, "parent", c.UserParentID(), parent1)
			eq(t, "username", e.ContactUsername, "night.owl")
		}},
		{"connect_bsuid_only.json", 1, func(t *testing.T, evs []Event) {
			e := evs[0]
			c := e.Call
			eq(t, "from", c.From, "")
			eq(t, "from user id", c.FromUserID, bsuid1)
			eq(t, "parent", c.UserParentID(), parent1)
			eq(t, "cta", c.CTAPayload, "support-button")
			eq(t, "name", e.ContactName, "Night Owl")
			eq(t, "username", e.ContactUsername, "night.owl")
			if want := []Contact{{UserID: bsuid1, ParentUserID: parent1, Name: "Night Owl", Username: "night.owl"}}; !reflect.DeepEqual(e.Contacts, want) {
				t.Errorf("contacts %+v, want %+v", e.Contacts, want)
			}
		}},
		{"username_user.json", 1, func(t *testing.T, evs []Event) {
			eq(t, "user id", evs[0].Call.UserID(), bsuid1)
			eq(t, "name", evs[0].ContactName, "night.owl")
		}},
		{"terminate_completed.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "status", c.Status, "COMPLETED")
			eq(t, "start", c.StartTime, unix(1760681510))
			eq(t, "end", c.EndTime, unix(1760681690))
			eq(t, "duration", c.Duration, int64(190))
			eq(t, "mismatch", c.DurationMismatch, true)
		}},
		{"terminate_integer_times.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "status", c.Status, "COMPLETED")
			eq(t, "ts", c.Timestamp, unix(1760681690))
			eq(t, "start", c.StartTime, unix(1760681510))
			eq(t, "duration", c.Duration, int64(180))
			eq(t, "mismatch", c.DurationMismatch, false)
		}},
		{"terminate_duration_mismatch.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "duration", c.Duration, int64(480))
			eq(t, "end-start", c.EndTime.Sub(c.StartTime), 120*time.Second)
			eq(t, "mismatch", c.DurationMismatch, true)
		}},
		{"terminate_failed_138021.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "status", c.Status, "FAILED")
			if len(c.Errors) != 1 || c.Errors[0] != (MetaError{Code: 138021, Title: "Call ended due to no media",
				Message: "Call ended due to no media",
				Details: "The WhatsApp client ended the call since it was not receiving any media for a long time"}) {
				t.Errorf("errors %+v", c.Errors)
			}
		}},
		{"terminate_errors_value_level.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			if len(c.Errors) != 1 || c.Errors[0].Code != 138021 || !strings.HasPrefix(c.Errors[0].Details, "The WhatsApp client") ||
				!strings.HasPrefix(c.Errors[0].Href, "https://") {
				t.Errorf("errors %+v", c.Errors)
			}
		}},
		{"terminate_errors_both_places.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "status", c.Status, "FAILED")
			if got := codes(c.Errors); !reflect.DeepEqual(got, []int{138021, 138022}) {
				t.Errorf("codes %v, want [138021 138022]", got)
			}
			eq(t, "value-level first", strings.HasPrefix(c.Errors[0].Details, "The WhatsApp client"), true)
		}},
		{"status_ringing.json", 1, func(t *testing.T, evs []Event) {
			s := evs[0].Status
			eq(t, "status", s.Status, StatusRinging)
			eq(t, "opaque", s.BizOpaque, "agent=42;ticket=A-1009")
		}},
		{"status_accepted_lowercase.json", 1, func(t *testing.T, evs []Event) {
			eq(t, "status", evs[0].Status.Status, StatusAccepted)
			eq(t, "name", evs[0].Status.StatusName, "accepted")
		}},
		{"status_rejected.json", 1, func(t *testing.T, evs []Event) {
			eq(t, "status", evs[0].Status.Status, StatusRejected)
		}},
		{"bic_statuses_bsuid.json", 3, func(t *testing.T, evs []Event) {
			for i, want := range []CallStatus{StatusRinging, StatusAccepted, StatusRejected} {
				eq(t, "status", evs[i].Status.Status, want)
			}
			s := evs[1].Status
			eq(t, "recipient id", s.RecipientID, "")
			eq(t, "recipient user id", s.RecipientUserID, "US.99887766554433221100")
			eq(t, "recipient parent", s.RecipientParentUserID, "US.ENT.55443322110099887766")
			eq(t, "integer ts", s.Timestamp, unix(1749197004))
			eq(t, "contact by user id", evs[1].ContactName, "Carlos")
			eq(t, "rejected user id", evs[2].Status.RecipientUserID, bsuid2)
		}},
		{"permission_accept_temporary.json", 1, func(t *testing.T, evs []Event) {
			p := evs[0].Permission
			eq(t, "accepted", p.Accepted, true)
			eq(t, "permanent", p.Permanent, false)
			eq(t, "expires", p.ExpiresAt, unix(1761286400))
			eq(t, "context", p.ContextID, wamid)
			eq(t, "source", p.Source, "user_action")
		}},
		{"permission_accept_string_expiry.json", 1, func(t *testing.T, evs []Event) {
			eq(t, "expires", evs[0].Permission.ExpiresAt, unix(1761286400))
		}},
		{"permission_no_message_type.json", 1, func(t *testing.T, evs []Event) {
			p := evs[0].Permission
			if p == nil {
				t.Fatalf("not a permission reply: %+v", evs[0])
			}
			eq(t, "accepted", p.Accepted, true)
			eq(t, "expires", p.ExpiresAt, unix(1768550400))
			eq(t, "from user id", p.FromUserID, bsuid2)
			eq(t, "context", p.ContextID, wamid)
		}},
		{"permission_bsuid_no_from.json", 1, func(t *testing.T, evs []Event) {
			p := evs[0].Permission
			eq(t, "from", p.From, "")
			eq(t, "from user id", p.FromUserID, bsuid1)
			eq(t, "parent", p.FromParentUserID, parent1)
			eq(t, "permanent", p.Permanent, true)
			eq(t, "ts", p.Timestamp, unix(1767168100))
		}},
		{"permission_permanent.json", 1, func(t *testing.T, evs []Event) {
			p := evs[0].Permission
			eq(t, "permanent", p.Permanent, true)
			eq(t, "no context", p.ContextID, "")
			eq(t, "revoke", p.AutomaticRevoke, false)
		}},
		{"permission_reject_automatic.json", 1, func(t *testing.T, evs []Event) {
			p := evs[0].Permission
			eq(t, "accepted", p.Accepted, false)
			eq(t, "revoke", p.AutomaticRevoke, true)
			eq(t, "grant", p.CallbackGrant, false)
		}},
		{"permission_callback_automatic.json", 1, func(t *testing.T, evs []Event) {
			p := evs[0].Permission
			eq(t, "grant", p.CallbackGrant, true)
			eq(t, "context", p.ContextID, callID1)
			eq(t, "revoke", p.AutomaticRevoke, false)
		}},
		{"msgstatus_sent_utility.json", 1, func(t *testing.T, evs []Event) {
			m := evs[0].MessageStatus
			eq(t, "status", m.Status, DeliverySent)
			eq(t, "pricing", *m.Pricing, Pricing{Billable: true, Model: "PMP", Type: "regular", Category: "utility"})
			eq(t, "recipient user id", m.RecipientUserID, bsuid2)
		}},
		{"msgstatus_delivered_service.json", 1, func(t *testing.T, evs []Event) {
			m := evs[0].MessageStatus
			eq(t, "status", m.Status, DeliveryDelivered)
			eq(t, "recipient", m.RecipientID, "")
			eq(t, "recipient parent", m.RecipientParentUserID, parent1)
			eq(t, "pricing", *m.Pricing, Pricing{Model: "PMP", Type: "free_customer_service", Category: "service"})
			eq(t, "username", evs[0].ContactUsername, "night.owl")
		}},
		{"msgstatus_read_free_entry_point.json", 1, func(t *testing.T, evs []Event) {
			m := evs[0].MessageStatus
			eq(t, "status", m.Status, DeliveryRead)
			eq(t, "pricing", *m.Pricing, Pricing{Model: "PMP", Type: "free_entry_point", Category: "marketing"})
		}},
		{"msgstatus_authentication_international.json", 2, func(t *testing.T, evs []Event) {
			eq(t, "normalised", evs[0].MessageStatus.Pricing.Category, "authentication_international")
			eq(t, "as sent", evs[1].MessageStatus.Pricing.Category, "marketing")
		}},
		{"msgstatus_failed.json", 1, func(t *testing.T, evs []Event) {
			e := evs[0]
			m := e.MessageStatus
			eq(t, "status", m.Status, DeliveryFailed)
			eq(t, "no pricing", m.Pricing == nil, true)
			eq(t, "no contacts", e.Contacts == nil, true)
			eq(t, "name", e.ContactName, "")
			if got := codes(m.Errors); !reflect.DeepEqual(got, []int{131026}) {
				t.Errorf("codes %v", got)
			}
		}},
		{"msgstatus_legacy_cbp.json", 1, func(t *testing.T, evs []Event) {
			m := evs[0].MessageStatus
			eq(t, "model", m.Pricing.Model, "CBP")
			eq(t, "conversation", m.ConversationID, "8e1c5f3a2b7d4e6f9a0b1c2d3e4f5a6b")
			eq(t, "origin", m.ConversationOrigin, "business_initiated")
			eq(t, "expires", m.ConversationExpiresAt, unix(1719086400))
		}},
		{"message_text.json", 1, func(t *testing.T, evs []Event) {
			m := evs[0].UserMessage
			eq(t, "type", m.Type, "text")
			eq(t, "from", m.From, user2)
			eq(t, "referral", m.Referral, false)
			eq(t, "ts", evs[0].Timestamp, unix(1760681400))
		}},
		{"message_referral.json", 1, func(t *testing.T, evs []Event) {
			eq(t, "referral", evs[0].UserMessage.Referral, true)
		}},
		{"message_button_reply_bsuid.json", 1, func(t *testing.T, evs []Event) {
			m := evs[0].UserMessage
			eq(t, "type", m.Type, "interactive:button_reply")
			eq(t, "from", m.From, "")
			eq(t, "from user id", m.FromUserID, bsuid1)
			eq(t, "context", m.ContextID, wamid)
		}},
		{"system_user_changed_number.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].IdentityChange
			eq(t, "kind", c.Kind, IdentityChangedNumber)
			eq(t, "new wa id", c.NewWaID, "447700900999")
			eq(t, "previous", c.PreviousUserID, bsuid2)
			eq(t, "new user id", c.NewUserID, "GB.12388776655443322999")
			eq(t, "from", c.From, user2)
		}},
		{"system_user_changed_user_id.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].IdentityChange
			eq(t, "kind", c.Kind, IdentityChangedUserID)
			eq(t, "previous", c.PreviousUserID, bsuid1)
			eq(t, "previous parent", c.PreviousParentUserID, "US.ENT.10000000000000000000")
			eq(t, "new", c.NewUserID, "US.22222222222222222222")
			eq(t, "new parent", c.NewParentUserID, parent1)
		}},
		{"system_fields_at_message_level.json", 2, func(t *testing.T, evs []Event) {
			c := evs[0].IdentityChange
			eq(t, "new wa id", c.NewWaID, "447700900999")
			eq(t, "previous", c.PreviousUserID, bsuid2)
			eq(t, "previous parent", c.PreviousParentUserID, "GB.ENT.1")
			eq(t, "body", c.Body, "changed")
			eq(t, "other system message", evs[1].Unknown.Type, "message:system:customer_identity_changed")
		}},
		{"recording_available.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "event", c.Event, CallRecordingAvailable)
			eq(t, "media", *c.Media, MediaRef{Kind: MediaAudio, ID: "1029384756102938",
				SHA256: "n3m4b5v6c7x8z9a0s1d2f3g4h5j6k7l8q9w0e1r2t3Y=", MimeType: "audio/ogg; codecs=opus",
				URL: "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1029384756102938&ext=1760682050&hash=ATs"})
			eq(t, "user", c.FromUserID, "IN.55512345678901234567")
		}},
		{"transcription_available.json", 1, func(t *testing.T, evs []Event) {
			c := evs[0].Call
			eq(t, "event", c.Event, CallTranscriptionAvailable)
			eq(t, "kind", c.Media.Kind, MediaDocument)
			eq(t, "mime", c.Media.MimeType, "application/json")
			eq(t, "id", c.Media.ID, "5647382910564738")
		}},
		{"call_created_sip.json", 1, func(t *testing.T, evs []Event) {
			eq(t, "event", evs[0].Call.Event, CallEventUnknown)
			eq(t, "name", evs[0].Call.EventName, "call_created")
		}},
		{"account_settings_update.json", 1, func(t *testing.T, evs []Event) {
			e := evs[0]
			s := e.SettingsUpdate
			eq(t, "pn", e.PhoneNumberID, pnID)
			eq(t, "settings pn", s.PhoneNumberID, pnID)
			eq(t, "type", s.Type, "PHONE_NUMBER_SETTINGS")
			eq(t, "status", s.Status, "ENABLED")
			eq(t, "icons", s.CallIconVisibility, "DEFAULT")
			eq(t, "callback", s.CallbackPermissionStatus, "ENABLED")
			eq(t, "sip", s.SIPStatus, "DISABLED")
			eq(t, "srtp", s.SRTPKeyExchangeProtocol, "DTLS")
			eq(t, "calling raw", json.Valid(s.Calling) && bytes.Contains(s.Calling, []byte("call_hours")), true)
			eq(t, "entry time", e.Timestamp, unix(1760700000))
		}},
		{"account_update_violation.json", 1, func(t *testing.T, evs []Event) {
			a := evs[0].AccountUpdate
			eq(t, "event", a.Event, "ACCOUNT_VIOLATION")
			eq(t, "violation", a.ViolationType, "LOW_USER_INITIATED_CALLING_QUALITY")
			eq(t, "pn from phone_number", evs[0].PhoneNumberID, display)
		}},
		{"account_update_restriction.json", 2, func(t *testing.T, evs []Event) {
			a := evs[0].AccountUpdate
			eq(t, "event", a.Event, "ACCOUNT_RESTRICTION")
			want := []Restriction{{"RESTRICTED_BUSINESS_INITIATED_CALLING", unix(1761324800)},
				{"RESTRICTED_USER_INITIATED_CALLING_CALL_BUTTON_HIDDEN", unix(1761324800)}}
			if !reflect.DeepEqual(a.Restrictions, want) {
				t.Errorf("restrictions %+v", a.Restrictions)
			}
			eq(t, "string entry time", evs[0].Timestamp, unix(1760720000))
			eq(t, "tier update", evs[1].AccountUpdate.Event, "VOLUME_BASED_PRICING_TIER_UPDATE")
		}},
		{"unknown_field.json", 4, func(t *testing.T, evs []Event) {
			eq(t, "account update", evs[0].AccountUpdate.Event, "VERIFIED_ACCOUNT")
			u := evs[1].Unknown
			eq(t, "errors type", u.Type, "errors")
			if got := codes(u.Errors); !reflect.DeepEqual(got, []int{131000}) {
				t.Errorf("codes %v", got)
			}
			eq(t, "unknown event", evs[2].Call.Event, CallEventUnknown)
			eq(t, "unknown event name", evs[2].Call.EventName, "hold")
			eq(t, "unknown field", evs[3].Unknown.Field, "message_template_status_update")
			eq(t, "whole value", evs[3].Unknown.Type, "")
		}},
		{"batch_multi.json", 6, func(t *testing.T, evs []Event) {
			eq(t, "0 connect", evs[0].Call.Event, CallConnect)
			eq(t, "1 terminate", evs[1].Call.Event, CallTerminate)
			eq(t, "2 ringing", evs[2].Status.Status, StatusRinging)
			eq(t, "3 message status", evs[3].MessageStatus != nil, true)
			eq(t, "4 permission", evs[4].Permission.Accepted, true)
			eq(t, "5 other waba", evs[5].WABAID, "209912345678901")
			eq(t, "5 other number", evs[5].PhoneNumberID, "301234567890123")
		}},
		{"batch_two_numbers.json", 3, func(t *testing.T, evs []Event) {
			for i, want := range []string{pnID, "106540352242999", "301234567890123"} {
				eq(t, "pn", evs[i].PhoneNumberID, want)
			}
			eq(t, "waba 2", evs[2].WABAID, "209912345678901")
			eq(t, "message", evs[2].UserMessage.From, "34600111222")
		}},
		{"broken_items.json", 4, func(t *testing.T, evs []Event) {
			// The good items around the broken ones survive.
			eq(t, "call 1", evs[0].Call.CallID, callID1)
			eq(t, "status", evs[1].Status.CallID, callID2)
			eq(t, "status next to bad calls", evs[2].Status.CallID, callID3)
			eq(t, "message after bad one", evs[3].UserMessage.MessageID, strings.Replace(wamid, "ERgS", "ERgC", 1))
		}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			b, err := Parse(readFixture(t, tc.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(b.Events) != tc.events {
				t.Fatalf("%d events, want %d: %+v", len(b.Events), tc.events, b.Events)
			}
			if tc.file != "broken_items.json" && len(b.Skipped) != 0 {
				t.Errorf("skipped %+v", b.Skipped)
			}
			tc.check(t, b.Events)
		})
	}
	for _, f := range fixtureFiles(t) {
		if !covered[f] {
			t.Errorf("fixture %s has no facts in this table", f)
		}
	}
}

func TestParseSkipsBrokenItems(t *testing.T) {
	b, err := Parse(readFixture(t, "broken_items.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Skipped{
		{"entry[0].changes[0].calls[1]", "timestamp", "want epoch seconds, got object"},
		{"entry[0].changes[0].calls[2]", "", "want object, got number"},
		{"entry[0].changes[0].calls[3]", "session.sdp", "want string, got number"},
		{"entry[0].changes[1]", "calls", "want array, got string"},
		{"entry[0].changes[2].messages[0]", "timestamp", `want epoch seconds, got "yesterday" (not an integer)`},
		{"entry[0].changes[3]", "metadata", "want object, got string"},
		{"entry[0].changes[4]", "", "want object, got string"},
		{"entry[1]", "", "want object, got array"},
		{"entry[2]", "changes", "want array, got object"},
	}
	if !reflect.DeepEqual(b.Skipped, want) {
		t.Errorf("skipped:\n got %+v\nwant %+v", b.Skipped, want)
	}
}

func wrap(field, value string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"` + field + `","value":` + value + `}]}]}`)
}

func TestParseTolerance(t *testing.T) {
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
				if !c.Timestamp.IsZero() || !c.StartTime.IsZero() || c.Duration != -1 || c.Direction != call.DirectionUnknown || c.DirectionGuessed {
					t.Errorf("got %+v", c)
				}
			}},
		{"whole-number float timestamp", wrap("calls", `{"calls":[{"id":"wacid.1","event":"connect","timestamp":1.7606815e9}]}`),
			func(t *testing.T, b *Batch) { eq(t, "ts", b.Events[0].Call.Timestamp, unix(1760681500)) }},
		{"numeric phone numbers keep their digits", wrap("calls", `{"metadata":{"phone_number_id":106540352242922123},"calls":[{"id":"wacid.1","event":"connect","from":917358580180}]}`),
			func(t *testing.T, b *Batch) {
				eq(t, "pn", b.Events[0].PhoneNumberID, "106540352242922123")
				eq(t, "from", b.Events[0].Call.From, user1)
			}},
		{"answer without direction is business initiated", wrap("calls", `{"calls":[{"id":"wacid.1","event":"connect","session":{"sdp_type":"ANSWER","sdp":"v=0\r\n"}}]}`),
			func(t *testing.T, b *Batch) {
				c := b.Events[0].Call
				eq(t, "direction", c.Direction, call.BusinessInitiated)
				eq(t, "guessed", c.DirectionGuessed, true)
			}},
		{"terminate without direction is not guessed", wrap("calls", `{"calls":[{"id":"wacid.1","event":"terminate","session":{"sdp_type":"offer"}}]}`),
			func(t *testing.T, b *Batch) { eq(t, "direction", b.Events[0].Call.Direction, call.DirectionUnknown) }},
		{"duration without times is not a mismatch", wrap("calls", `{"calls":[{"id":"wacid.1","event":"terminate","duration":30}]}`),
			func(t *testing.T, b *Batch) {
				if c := b.Events[0].Call; c.Duration != 30 || c.DurationMismatch {
					t.Errorf("got %+v", c)
				}
			}},
		{"value errors go to every call of the change", wrap("calls", `{"calls":[{"id":"wacid.1","event":"terminate"},{"id":"wacid.2","event":"terminate","errors":[{"code":138022}]}],"errors":[{"code":138021},{"code":138021}]}`),
			func(t *testing.T, b *Batch) {
				eq(t, "events", len(b.Events), 2)
				if a, c := codes(b.Events[0].Call.Errors), codes(b.Events[1].Call.Errors); !reflect.DeepEqual(a, []int{138021}) || !reflect.DeepEqual(c, []int{138021, 138022}) {
					t.Errorf("codes %v %v", a, c)
				}
			}},
		{"status without type in calls field is a call status", wrap("calls", `{"statuses":[{"id":"wacid.1","status":"Ringing"}]}`),
			func(t *testing.T, b *Batch) {
				if s := b.Events[0].Status; s == nil || s.Status != StatusRinging {
					t.Errorf("got %+v", b.Events[0])
				}
			}},
		{"call status in the messages field", wrap("messages", `{"statuses":[{"id":"wacid.1","type":"call","status":"ACCEPTED"}]}`),
			func(t *testing.T, b *Batch) { eq(t, "status", b.Events[0].Status.Status, StatusAccepted) }},
		{"unknown call status", wrap("calls", `{"statuses":[{"id":"wacid.1","type":"call","status":"RINGING_TWICE"}]}`),
			func(t *testing.T, b *Batch) {
				if s := b.Events[0].Status; s == nil || s.Status != StatusUnknown || s.StatusName != "RINGING_TWICE" {
					t.Errorf("got %+v", b.Events[0])
				}
			}},
		{"unknown message status", wrap("messages", `{"statuses":[{"id":"wamid.1","status":"deleted","pricing":{"billable":"false","category":"Authentication-International"}}]}`),
			func(t *testing.T, b *Batch) {
				m := b.Events[0].MessageStatus
				eq(t, "status", m.Status, DeliveryUnknown)
				eq(t, "name", m.StatusName, "deleted")
				eq(t, "category", m.Pricing.Category, "authentication_international")
			}},
		{"permission reply with another message type still routes", wrap("messages", `{"messages":[{"from":"1","type":"button","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"reject","response_source":"user_action"}}}]}`),
			func(t *testing.T, b *Batch) {
				p := b.Events[0].Permission
				if p == nil || p.Accepted || p.AutomaticRevoke {
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
		{"identity fields at message level only", wrap("messages", `{"messages":[{"from":"1","type":"system","system":{"type":"user_changed_user_id"},"previous_user_id":"US.1","user_id":"US.2"}]}`),
			func(t *testing.T, b *Batch) {
				c := b.Events[0].IdentityChange
				eq(t, "previous", c.PreviousUserID, "US.1")
				eq(t, "new", c.NewUserID, "US.2")
			}},
		{"message without type", wrap("messages", `{"messages":[{"from":"1","id":"wamid.1"}]}`),
			func(t *testing.T, b *Batch) { eq(t, "type", b.Events[0].UserMessage.Type, "") }},
		{"null referral is no referral", wrap("messages", `{"messages":[{"from":"1","type":"text","referral":null}]}`),
			func(t *testing.T, b *Batch) { eq(t, "referral", b.Events[0].UserMessage.Referral, false) }},
		{"contact matched by parent BSUID", wrap("messages", `{"contacts":[{"profile":{"name":"A"},"user_id":"US.9"},{"profile":{"name":"B","username":"b"},"user_id":"US.8","parent_user_id":"US.ENT.7"}],"messages":[{"from_parent_user_id":"US.ENT.7","type":"text"}]}`),
			func(t *testing.T, b *Batch) {
				eq(t, "name", b.Events[0].ContactName, "B")
				eq(t, "username", b.Events[0].ContactUsername, "b")
			}},
		{"settings with metadata and no calling", wrap("account_settings_update", `{"type":"PHONE_NUMBER_SETTINGS","metadata":{"phone_number_id":"77"},"timestamp":"1760000000"}`),
			func(t *testing.T, b *Batch) {
				e := b.Events[0]
				eq(t, "pn", e.PhoneNumberID, "77")
				eq(t, "settings pn", e.SettingsUpdate.PhoneNumberID, "77")
				eq(t, "calling", e.SettingsUpdate.Calling == nil, true)
				eq(t, "ts", e.Timestamp, unix(1760000000))
			}},
		{"restriction expiration as RFC 3339", wrap("account_update", `{"event":"ACCOUNT_RESTRICTION","violation_type":"X","restriction_info":[{"restriction_type":"R","expiration":"2026-12-01T00:00:00Z"}]}`),
			func(t *testing.T, b *Batch) {
				a := b.Events[0].AccountUpdate
				eq(t, "expiration", a.Restrictions[0].Expiration, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
				eq(t, "value-level violation", a.ViolationType, "X")
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
		{"error code as string", wrap("calls", `{"calls":[{"id":"wacid.1","event":"terminate","errors":[{"code":"138021"}]}]}`),
			func(t *testing.T, b *Batch) {
				if e := b.Events[0].Call.Errors; len(e) != 1 || e[0].Code != 138021 {
					t.Errorf("got %+v", e)
				}
			}},
		{"bad entry time only loses the time", []byte(`{"object":"whatsapp_business_account","entry":[{"id":1,"time":{},"changes":[{"field":"x","value":1}]}]}`),
			func(t *testing.T, b *Batch) {
				eq(t, "waba", b.Events[0].WABAID, "1")
				eq(t, "ts", b.Events[0].Timestamp.IsZero(), true)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse(tc.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(b.Skipped) != 0 {
				t.Errorf("skipped %+v", b.Skipped)
			}
			if len(b.Events) == 0 {
				t.Fatal("no events")
			}
			checkInvariants(t, tc.body, b)
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

// TestParseErrors: only a body that is not a WABA envelope is an error.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantMsg string
	}{
		{"empty body", ``, "unexpected end"},
		{"not json", `hello`, "invalid character"},
		{"trailing garbage", `{"object":"whatsapp_business_account","entry":[]}x`, "invalid character"},
		{"array", `[]`, "cannot unmarshal"},
		{"wrong object", `{"object":"page","entry":[]}`, `object "page"`},
		{"object not a string", `{"object":7,"entry":[]}`, "object"},
		{"no object", `{"entry":[]}`, `object ""`},
		{"no entry", `{"object":"whatsapp_business_account"}`, "no entry"},
		{"null entry", `{"object":"whatsapp_business_account","entry":null}`, "no entry"},
		{"entry not array", `{"object":"whatsapp_business_account","entry":{}}`, "field .entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse([]byte(tc.body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
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
	t.Run("empty entry list", func(t *testing.T) {
		b, err := Parse([]byte(`{"object":"whatsapp_business_account","entry":[]}`))
		if err != nil || len(b.Events) != 0 || len(b.Skipped) != 0 {
			t.Fatalf("got %+v, %v", b, err)
		}
	})
}

// TestParseSkips: a mistyped known field drops its item (reported), never
// the delivery nor the item's valid siblings.
func TestParseSkips(t *testing.T) {
	good := `{"id":"wacid.good","event":"connect","timestamp":"1760681506"}`
	tests := []struct {
		name  string
		field string
		value string
		where string
		jsonf string
	}{
		{"timestamp object", "calls", `{"calls":[` + good + `,{"id":"a","timestamp":{}}]}`, "entry[0].changes[0].calls[1]", "timestamp"},
		{"timestamp not a number", "calls", `{"calls":[{"id":"a","timestamp":"yesterday"},` + good + `]}`, "entry[0].changes[0].calls[0]", "timestamp"},
		{"timestamp fraction", "calls", `{"calls":[{"id":"a","timestamp":1.5},` + good + `]}`, "entry[0].changes[0].calls[0]", "timestamp"},
		{"negative epoch", "calls", `{"calls":[{"id":"a","end_time":-5},` + good + `]}`, "entry[0].changes[0].calls[0]", "end_time"},
		{"huge epoch", "calls", `{"calls":[{"id":"a","end_time":99999999999999},` + good + `]}`, "entry[0].changes[0].calls[0]", "end_time"},
		{"id not a string", "calls", `{"calls":[{"id":5},` + good + `]}`, "entry[0].changes[0].calls[0]", "id"},
		{"error code object", "calls", `{"calls":[{"id":"a","errors":[{"code":{}}]},` + good + `]}`, "entry[0].changes[0].calls[0]", "errors.code"},
		{"calls not array", "calls", `{"calls":{},"statuses":[{"id":"wacid.good","type":"call","status":"RINGING"}]}`, "entry[0].changes[0]", "calls"},
		{"status item not object", "calls", `{"statuses":[7],"calls":[` + good + `]}`, "entry[0].changes[0].statuses[0]", ""},
		{"null item", "calls", `{"calls":[null,` + good + `]}`, "entry[0].changes[0].calls[0]", ""},
		{"bad contact keeps the call", "calls", `{"contacts":[{"wa_id":{}}],"calls":[` + good + `]}`, "entry[0].changes[0].contacts[0]", "wa_id"},
		{"bad value error keeps the call", "calls", `{"errors":[{"code":"x"}],"calls":[` + good + `]}`, "entry[0].changes[0].errors[0]", "code"},
		{"bad is_permanent", "messages", `{"messages":[{"type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"is_permanent":"maybe"}}},{"id":"wacid.good","from":"1","type":"text"}]}`, "entry[0].changes[0].messages[0]", "interactive.call_permission_reply.is_permanent"},
		{"bad pricing", "messages", `{"statuses":[{"id":"x","pricing":{"billable":[]}},{"id":"wacid.good","status":"sent"}]}`, "entry[0].changes[0].statuses[0]", "pricing.billable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := wrap(tc.field, tc.value)
			b, err := Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, body, b)
			if len(b.Skipped) != 1 || b.Skipped[0].Where != tc.where || b.Skipped[0].Field != tc.jsonf {
				t.Fatalf("skipped %+v, want one at %s field %q", b.Skipped, tc.where, tc.jsonf)
			}
			found := false
			for _, e := range b.Events {
				found = found || bytes.Contains(e.Raw, []byte("wacid.good"))
			}
			if !found {
				t.Errorf("valid sibling lost: %+v", b.Events)
			}
		})
	}
	t.Run("bad settings value", func(t *testing.T) {
		b, err := Parse(wrap("account_settings_update", `{"phone_number_settings":{"calling":{"status":1}}}`))
		if err != nil || len(b.Events) != 0 || len(b.Skipped) != 1 || b.Skipped[0].Field != "phone_number_settings.calling.status" {
			t.Fatalf("got %+v %v", b, err)
		}
	})
}

func TestParseDoesNotAliasBody(t *testing.T) {
	for _, name := range []string{"message_text.json", "unknown_field.json", "account_settings_update.json"} {
		body := readFixture(t, name)
		b, err := Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		before := string(encodeBatch(t, b))
		for i := range body {
			body[i] = 'x'
		}
		if string(encodeBatch(t, b)) != before {
			t.Errorf("%s: the batch changed when the body buffer was reused", name)
		}
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
		{"recording", CallRecordingAvailable.String(), "recording_available"},
		{"transcription", CallTranscriptionAvailable.String(), "transcription_available"},
		{"unknown event", CallEventUnknown.String(), "unknown"},
		{"out of range event", CallEventType(99).String(), "unknown"},
		{"ringing", StatusRinging.String(), "ringing"},
		{"accepted", StatusAccepted.String(), "accepted"},
		{"rejected", StatusRejected.String(), "rejected"},
		{"out of range status", CallStatus(42).String(), "unknown"},
		{"sent", DeliverySent.String(), "sent"},
		{"failed", DeliveryFailed.String(), "failed"},
		{"out of range delivery", DeliveryStatus(9).String(), "unknown"},
		{"changed number", IdentityChangedNumber.String(), "user_changed_number"},
		{"changed user id", IdentityChangedUserID.String(), "user_changed_user_id"},
		{"audio", MediaAudio.String(), "audio"},
		{"document", MediaDocument.String(), "document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// TestEnumJSON: enums write their name and read a name or the number older
// builds wrote (events kept in Redis across an upgrade).
func TestEnumJSON(t *testing.T) {
	tests := []struct {
		in   string
		want CallEventType
	}{
		{`"connect"`, CallConnect},
		{`"TERMINATE"`, CallTerminate},
		{`"call_recording_available"`, CallRecordingAvailable},
		{`"transcription_available"`, CallTranscriptionAvailable},
		{`2`, CallTerminate},
		{`200`, CallEventUnknown},
		{`"hold"`, CallEventUnknown},
		{`null`, CallEventUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var got CallEventType
			if err := json.Unmarshal([]byte(tc.in), &got); err != nil || got != tc.want {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	var ev Event
	old := `{"Call":{"Event":1,"Direction":"USER_INITIATED"},"Status":null}`
	if err := json.Unmarshal([]byte(old), &ev); err != nil || ev.Call.Event != CallConnect {
		t.Fatalf("old event form: %+v %v", ev.Call, err)
	}
	var s struct {
		S CallStatus
		D DeliveryStatus
		K IdentityChangeKind
		M MediaKind
	}
	if err := json.Unmarshal([]byte(`{"S":"Accepted","D":4,"K":"customer_changed_number","M":"DOCUMENT"}`), &s); err != nil ||
		s.S != StatusAccepted || s.D != DeliveryFailed || s.K != IdentityChangedNumber || s.M != MediaDocument {
		t.Fatalf("got %+v %v", s, err)
	}
}
