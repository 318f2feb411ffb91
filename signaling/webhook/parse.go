package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callgw/callgw/call"
)

// ObjectWABA is the only envelope "object" Parse accepts.
const ObjectWABA = "whatsapp_business_account"

// Parse decodes one webhook delivery. It returns ErrTooLarge for a body over
// MaxBodyBytes and ErrMalformed (wrapped with where and why) for a body that
// is not JSON, not a whatsapp_business_account envelope, or has a known field
// of an impossible type. Unknown fields, changes fields and event types are
// tolerated and returned as UnknownEvent. Parse has no side effects and never
// panics.
func Parse(body []byte) (*Batch, error) {
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), MaxBodyBytes)
	}
	var env wireEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if env.Object != ObjectWABA {
		return nil, fmt.Errorf("%w: object %q, want %q", ErrMalformed, truncate(env.Object, 64), ObjectWABA)
	}
	if env.Entry == nil {
		return nil, fmt.Errorf("%w: no entry", ErrMalformed)
	}
	b := &Batch{}
	for i, e := range env.Entry {
		for j, ch := range e.Changes {
			if err := b.addChange(e.ID, ch); err != nil {
				return nil, fmt.Errorf("%w: entry[%d].changes[%d]: %w", ErrMalformed, i, j, err)
			}
		}
	}
	return b, nil
}

type wireEnvelope struct {
	Object string      `json:"object"`
	Entry  []wireEntry `json:"entry"`
}

type wireEntry struct {
	ID      string       `json:"id"`
	Changes []wireChange `json:"changes"`
}

type wireChange struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

type wireValue struct {
	Metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []wireContact     `json:"contacts"`
	Calls    []json.RawMessage `json:"calls"`
	Statuses []json.RawMessage `json:"statuses"`
	Messages []json.RawMessage `json:"messages"`
	Errors   []wireError       `json:"errors"`
}

type wireContact struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID   string `json:"wa_id"`
	UserID string `json:"user_id"`
}

type wireError struct {
	Code      flexInt `json:"code"`
	Title     string  `json:"title"`
	Message   string  `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type wireSession struct {
	SDPType string `json:"sdp_type"`
	SDP     string `json:"sdp"`
}

type wireCall struct {
	ID              string       `json:"id"`
	From            string       `json:"from"`
	To              string       `json:"to"`
	FromUserID      string       `json:"from_user_id"`
	ToUserID        string       `json:"to_user_id"`
	Event           string       `json:"event"`
	Timestamp       flexTime     `json:"timestamp"`
	Direction       string       `json:"direction"`
	Session         *wireSession `json:"session"`
	Status          string       `json:"status"`
	StartTime       flexTime     `json:"start_time"`
	EndTime         flexTime     `json:"end_time"`
	Duration        flexInt      `json:"duration"`
	Errors          []wireError  `json:"errors"`
	BizOpaque       string       `json:"biz_opaque_callback_data"`
	DeeplinkPayload string       `json:"deeplink_payload"`
	CTAPayload      string       `json:"cta_payload"`
}

type wireStatus struct {
	ID          string      `json:"id"`
	Type        string      `json:"type"`
	Status      string      `json:"status"`
	Timestamp   flexTime    `json:"timestamp"`
	RecipientID string      `json:"recipient_id"`
	BizOpaque   string      `json:"biz_opaque_callback_data"`
	Errors      []wireError `json:"errors"`
}

// wireMessageHead is decoded first to route a messages[] item.
type wireMessageHead struct {
	From        string `json:"from"`
	Type        string `json:"type"`
	Interactive *struct {
		Type string `json:"type"`
	} `json:"interactive"`
}

type wirePermissionMessage struct {
	From      string   `json:"from"`
	ID        string   `json:"id"`
	Timestamp flexTime `json:"timestamp"`
	Context   *struct {
		ID string `json:"id"`
	} `json:"context"`
	Interactive struct {
		Reply struct {
			Response       string   `json:"response"`
			IsPermanent    flexBool `json:"is_permanent"`
			Expiration     flexTime `json:"expiration_timestamp"`
			ResponseSource string   `json:"response_source"`
		} `json:"call_permission_reply"`
	} `json:"interactive"`
}

func (b *Batch) addChange(wabaID string, ch wireChange) error {
	raw := ch.Value
	if ch.Field != "calls" && ch.Field != "messages" {
		b.Events = append(b.Events, Event{WABAID: wabaID, Unknown: &UnknownEvent{Field: ch.Field, Raw: cloneRaw(raw)}})
		return nil
	}
	var v wireValue
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("field %q value: %w", ch.Field, err)
		}
	}
	base := Event{WABAID: wabaID, PhoneNumberID: v.Metadata.PhoneNumberID, DisplayPhoneNumber: v.Metadata.DisplayPhoneNumber}
	before := len(b.Events)

	for k, item := range v.Calls {
		var w wireCall
		if err := json.Unmarshal(item, &w); err != nil {
			return fmt.Errorf("calls[%d]: %w", k, err)
		}
		ev := base
		ev.Call = w.toEvent()
		ev.ContactName = contactName(v.Contacts, ev.Call.UserNumber(), ev.Call.UserID())
		b.Events = append(b.Events, ev)
	}
	for k, item := range v.Statuses {
		var w wireStatus
		if err := json.Unmarshal(item, &w); err != nil {
			return fmt.Errorf("statuses[%d]: %w", k, err)
		}
		ev := base
		// Call statuses carry type "call"; message delivery receipts carry
		// "message" or, in the messages field, no type at all.
		if strings.EqualFold(w.Type, "call") || (w.Type == "" && ch.Field == "calls") {
			ev.Status = w.toEvent()
			ev.ContactName = contactName(v.Contacts, w.RecipientID, "")
		} else {
			typ := w.Type
			if typ == "" {
				typ = "message"
			}
			ev.Unknown = &UnknownEvent{Field: ch.Field, Type: "status:" + typ, Raw: cloneRaw(item)}
			ev.ContactName = contactName(v.Contacts, w.RecipientID, "")
		}
		b.Events = append(b.Events, ev)
	}
	for k, item := range v.Messages {
		var head wireMessageHead
		if err := json.Unmarshal(item, &head); err != nil {
			return fmt.Errorf("messages[%d]: %w", k, err)
		}
		ev := base
		if head.Type == "interactive" && head.Interactive != nil && head.Interactive.Type == "call_permission_reply" {
			var w wirePermissionMessage
			if err := json.Unmarshal(item, &w); err != nil {
				return fmt.Errorf("messages[%d]: %w", k, err)
			}
			ev.Permission = w.toEvent()
			ev.ContactName = contactName(v.Contacts, w.From, "")
		} else {
			typ := head.Type
			if head.Interactive != nil && head.Interactive.Type != "" {
				typ += ":" + head.Interactive.Type
			}
			ev.Unknown = &UnknownEvent{Field: ch.Field, Type: "message:" + typ, Raw: cloneRaw(item)}
			ev.ContactName = contactName(v.Contacts, head.From, "")
		}
		b.Events = append(b.Events, ev)
	}
	if len(v.Errors) > 0 {
		ev := base
		ev.Unknown = &UnknownEvent{Field: ch.Field, Type: "errors", Raw: cloneRaw(raw), Errors: convertErrors(v.Errors)}
		b.Events = append(b.Events, ev)
	}
	if len(b.Events) == before {
		// Nothing we recognise: keep the change so it is acknowledged, not lost.
		ev := base
		ev.Unknown = &UnknownEvent{Field: ch.Field, Raw: cloneRaw(raw)}
		b.Events = append(b.Events, ev)
	}
	return nil
}

func (w *wireCall) toEvent() *CallEvent {
	c := &CallEvent{
		CallID:          w.ID,
		Event:           parseCallEventType(w.Event),
		EventName:       w.Event,
		Direction:       call.ParseDirection(w.Direction),
		From:            w.From,
		To:              w.To,
		FromUserID:      w.FromUserID,
		ToUserID:        w.ToUserID,
		Timestamp:       w.Timestamp.t,
		Status:          strings.ToUpper(w.Status),
		StartTime:       w.StartTime.t,
		EndTime:         w.EndTime.t,
		Duration:        -1,
		Errors:          convertErrors(w.Errors),
		BizOpaque:       w.BizOpaque,
		DeeplinkPayload: w.DeeplinkPayload,
		CTAPayload:      w.CTAPayload,
	}
	if w.Session != nil {
		c.SDPType = strings.ToLower(w.Session.SDPType)
		c.SDP = w.Session.SDP
	}
	if w.Duration.set {
		c.Duration = w.Duration.v
		if !c.StartTime.IsZero() && !c.EndTime.IsZero() {
			c.DurationMismatch = c.Duration != c.EndTime.Unix()-c.StartTime.Unix()
		}
	}
	return c
}

func (w *wireStatus) toEvent() *StatusEvent {
	return &StatusEvent{
		CallID:      w.ID,
		Status:      parseCallStatus(w.Status),
		StatusName:  w.Status,
		Timestamp:   w.Timestamp.t,
		RecipientID: w.RecipientID,
		BizOpaque:   w.BizOpaque,
		Errors:      convertErrors(w.Errors),
	}
}

func (w *wirePermissionMessage) toEvent() *PermissionReply {
	r := w.Interactive.Reply
	p := &PermissionReply{
		From:      w.From,
		MessageID: w.ID,
		Timestamp: w.Timestamp.t,
		Accepted:  strings.EqualFold(r.Response, "accept"),
		Permanent: bool(r.IsPermanent),
		ExpiresAt: r.Expiration.t,
		Source:    strings.ToLower(r.ResponseSource),
	}
	if w.Context != nil {
		p.ContextID = w.Context.ID
	}
	return p
}

func convertErrors(ws []wireError) []MetaError {
	if len(ws) == 0 {
		return nil
	}
	out := make([]MetaError, len(ws))
	for i, w := range ws {
		code := 0
		if w.Code.set {
			code = int(w.Code.v)
		}
		out[i] = MetaError{Code: code, Title: w.Title, Message: w.Message, Details: w.ErrorData.Details}
	}
	return out
}

func contactName(cs []wireContact, waID, userID string) string {
	for _, c := range cs {
		if (waID != "" && c.WaID == waID) || (userID != "" && c.UserID == userID) {
			return c.Profile.Name
		}
	}
	if len(cs) == 1 {
		return cs[0].Profile.Name
	}
	return ""
}

// cloneRaw copies a RawMessage so the Batch does not alias the caller's body.
func cloneRaw(r json.RawMessage) json.RawMessage {
	if r == nil {
		return nil
	}
	return bytes.Clone(r)
}

// flexTime is epoch seconds sent as a JSON number or string; null, "" and
// absence leave it zero.
type flexTime struct{ t time.Time }

// maxEpoch bounds accepted epoch seconds (year 9999) so times stay sane.
const maxEpoch = 253402300799

func (f *flexTime) UnmarshalJSON(b []byte) error {
	n, ok, err := parseFlexInt(b)
	if err != nil || !ok {
		return err
	}
	if n < 0 || n > maxEpoch {
		return fmt.Errorf("epoch seconds %d out of range", n)
	}
	f.t = time.Unix(n, 0).UTC()
	return nil
}

// flexInt is an integer sent as a JSON number or string.
type flexInt struct {
	v   int64
	set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	n, ok, err := parseFlexInt(b)
	if err != nil || !ok {
		return err
	}
	f.v, f.set = n, true
	return nil
}

// parseFlexInt reads an integer from a JSON number or string. ok is false for
// null or "". A number with a fraction or exponent is truncated when whole.
func parseFlexInt(b []byte) (n int64, ok bool, err error) {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return 0, false, nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return 0, false, err
		}
		s = strings.TrimSpace(str)
		if s == "" {
			return 0, false, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true, nil
	}
	fl, err := strconv.ParseFloat(s, 64)
	if err != nil || fl > 1<<62 || fl < -(1<<62) || fl != float64(int64(fl)) {
		return 0, false, fmt.Errorf("not an integer: %q", truncate(s, 32))
	}
	return int64(fl), true, nil
}

// flexBool is a boolean sent as true/false or "true"/"false".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.ToLower(strings.Trim(string(bytes.TrimSpace(b)), `"`)) {
	case "true", "1":
		*f = true
	case "false", "0", "", "null":
		*f = false
	default:
		return fmt.Errorf("not a boolean: %q", truncate(string(b), 32))
	}
	return nil
}
