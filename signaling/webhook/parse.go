package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/callgw/callgw/call"
)

// ObjectWABA is the only envelope "object" Parse accepts.
const ObjectWABA = "whatsapp_business_account"

// Fields Parse understands; any other changes[].field is an UnknownEvent.
const (
	FieldCalls                 = "calls"
	FieldMessages              = "messages"
	FieldAccountSettingsUpdate = "account_settings_update"
	FieldAccountUpdate         = "account_update"
)

// Parse decodes one webhook delivery. It returns an error only for a body
// over MaxBodyBytes (ErrTooLarge) or one that is not JSON or not a
// whatsapp_business_account envelope with an entry array (ErrMalformed,
// wrapped with why). An entry, change or item with a known field of an
// impossible type is dropped and listed in Batch.Skipped; its siblings are
// returned. Unknown fields, changes fields and event types are tolerated
// and returned as UnknownEvent or an Unknown enum value. Parse has no side
// effects, never panics and never aliases body.
func Parse(body []byte) (*Batch, error) { return parse(body, false) }

func parse(body []byte, slow bool) (*Batch, error) {
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), MaxBodyBytes)
	}
	var env struct {
		Object string            `json:"object"`
		Entry  []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if env.Object != ObjectWABA {
		return nil, fmt.Errorf("%w: object %q, want %q", ErrMalformed, truncate(env.Object, 64), ObjectWABA)
	}
	if env.Entry == nil {
		return nil, fmt.Errorf("%w: no entry", ErrMalformed)
	}
	b := &parser{Batch: &Batch{}, slow: slow}
	for i, raw := range env.Entry {
		b.addEntry(fmt.Sprintf("entry[%d]", i), raw)
	}
	return b.Batch, nil
}

// parser builds a Batch. Entries and values are first decoded in one go
// (fast path); when that fails, they are decoded piece by piece to find and
// skip what is broken (slow path), which gives the same result for valid
// input. slow forces the slow path (tests compare both).
type parser struct {
	*Batch
	slow bool
}

func (b *parser) skip(where string, err error) {
	field, reason := describe(err)
	b.Skipped = append(b.Skipped, Skipped{Where: where, Field: field, Reason: reason})
}

// decodeObject decodes an object into v; anything but an object (or null,
// which leaves v untouched when allowNull) is an error.
func decodeObject(raw json.RawMessage, v any, allowNull bool) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || (allowNull && isNull(t)) {
		return nil
	}
	if t[0] != '{' {
		return &json.UnmarshalTypeError{Value: jsonKind(t), Type: reflect.TypeOf(v).Elem()}
	}
	return json.Unmarshal(raw, v)
}

// decodeList decodes a JSON array (or null/absent) into its raw items.
func decodeList(raw json.RawMessage) ([]json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	err := json.Unmarshal(raw, &items)
	return items, err
}

type wireEntry struct {
	ID      flexString        `json:"id"`
	Time    json.RawMessage   `json:"time"`
	Changes []json.RawMessage `json:"changes"`
}

type wireChange struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

func (b *parser) addEntry(where string, raw json.RawMessage) {
	var fast struct {
		ID      flexString      `json:"id"`
		Time    json.RawMessage `json:"time"`
		Changes []*wireChange   `json:"changes"`
	}
	if !b.slow && decodeObject(raw, &fast, false) == nil {
		t := entryTime(fast.Time)
		for j, ch := range fast.Changes {
			cw := fmt.Sprintf("%s.changes[%d]", where, j)
			if ch == nil {
				b.skip(cw, &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeFor[wireChange]()})
				continue
			}
			b.addChange(cw, Event{WABAID: string(fast.ID), Field: ch.Field, Timestamp: t}, ch.Value)
		}
		return
	}
	var e wireEntry
	if err := decodeObject(raw, &e, false); err != nil {
		b.skip(where, err)
		return
	}
	t := entryTime(e.Time)
	for j, rc := range e.Changes {
		cw := fmt.Sprintf("%s.changes[%d]", where, j)
		var ch wireChange
		if err := decodeObject(rc, &ch, false); err != nil {
			b.skip(cw, err)
			continue
		}
		b.addChange(cw, Event{WABAID: string(e.ID), Field: ch.Field, Timestamp: t}, ch.Value)
	}
}

// entryTime reads entry[].time; it only backs Event.Timestamp up, so a bad
// one is zero.
func entryTime(raw json.RawMessage) time.Time {
	var t flexTime
	_ = t.UnmarshalJSON(raw)
	return t.t
}

// addChange routes one change by its field; base carries WABAID, Field and
// the entry's time.
func (b *parser) addChange(where string, base Event, value json.RawMessage) {
	switch base.Field {
	case FieldCalls, FieldMessages:
		b.addCallsOrMessages(where, base, value)
	case FieldAccountSettingsUpdate:
		b.addSettings(where, base, value)
	case FieldAccountUpdate:
		b.addAccount(where, base, value)
	default:
		raw := cloneRaw(value)
		base.Raw = raw
		base.Unknown = &UnknownEvent{Field: base.Field, Raw: raw}
		b.Events = append(b.Events, base)
	}
}

type wireMetadata struct {
	DisplayPhoneNumber flexString `json:"display_phone_number"`
	PhoneNumberID      flexString `json:"phone_number_id"`
}

type wireValue struct {
	Metadata json.RawMessage `json:"metadata"`
	Contacts json.RawMessage `json:"contacts"`
	Calls    json.RawMessage `json:"calls"`
	Statuses json.RawMessage `json:"statuses"`
	Messages json.RawMessage `json:"messages"`
	Errors   json.RawMessage `json:"errors"`
}

type wireContact struct {
	Profile struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"profile"`
	WaID         flexString `json:"wa_id"`
	UserID       string     `json:"user_id"`
	ParentUserID string     `json:"parent_user_id"`
}

type wireError struct {
	Code      flexInt `json:"code"`
	Title     string  `json:"title"`
	Message   string  `json:"message"`
	Href      string  `json:"href"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type wireSession struct {
	SDPType string `json:"sdp_type"`
	SDP     string `json:"sdp"`
}

type wireMedia struct {
	ID       string `json:"id"`
	SHA256   string `json:"sha256"`
	MimeType string `json:"mime_type"`
	URL      string `json:"url"`
}

type wireMediaHolder struct {
	Audio    *wireMedia `json:"audio"`
	Document *wireMedia `json:"document"`
}

type wireCall struct {
	ID                string           `json:"id"`
	From              flexString       `json:"from"`
	To                flexString       `json:"to"`
	FromUserID        string           `json:"from_user_id"`
	FromParentUserID  string           `json:"from_parent_user_id"`
	ToUserID          string           `json:"to_user_id"`
	ToParentUserID    string           `json:"to_parent_user_id"`
	Event             string           `json:"event"`
	Timestamp         flexTime         `json:"timestamp"`
	Direction         string           `json:"direction"`
	Session           *wireSession     `json:"session"`
	Status            string           `json:"status"`
	StartTime         flexTime         `json:"start_time"`
	EndTime           flexTime         `json:"end_time"`
	Duration          flexInt          `json:"duration"`
	Errors            []wireError      `json:"errors"`
	BizOpaque         string           `json:"biz_opaque_callback_data"`
	DeeplinkPayload   string           `json:"deeplink_payload"`
	CTAPayload        string           `json:"cta_payload"`
	CallRecording     *wireMediaHolder `json:"call_recording"`
	CallTranscript    *wireMediaHolder `json:"call_transcript"`
	CallTranscription *wireMediaHolder `json:"call_transcription"`
}

type wireStatus struct {
	ID                    string      `json:"id"`
	Type                  string      `json:"type"`
	Status                string      `json:"status"`
	Timestamp             flexTime    `json:"timestamp"`
	RecipientID           flexString  `json:"recipient_id"`
	RecipientUserID       string      `json:"recipient_user_id"`
	RecipientParentUserID string      `json:"recipient_parent_user_id"`
	BizOpaque             string      `json:"biz_opaque_callback_data"`
	Errors                []wireError `json:"errors"`
	Pricing               *struct {
		Billable     flexBool `json:"billable"`
		PricingModel string   `json:"pricing_model"`
		Type         string   `json:"type"`
		Category     string   `json:"category"`
	} `json:"pricing"`
	Conversation *struct {
		ID     string `json:"id"`
		Origin *struct {
			Type string `json:"type"`
		} `json:"origin"`
		Expiration flexTime `json:"expiration_timestamp"`
	} `json:"conversation"`
}

// wireIdentity holds identity-change fields; Meta puts them in system{},
// and they are read at message level too.
type wireIdentity struct {
	Body                 string     `json:"body"`
	WaID                 flexString `json:"wa_id"`
	NewWaID              flexString `json:"new_wa_id"`
	UserID               string     `json:"user_id"`
	NewUserID            string     `json:"new_user_id"`
	ParentUserID         string     `json:"parent_user_id"`
	NewParentUserID      string     `json:"new_parent_user_id"`
	PreviousUserID       string     `json:"previous_user_id"`
	PreviousParentUserID string     `json:"previous_parent_user_id"`
}

type wireMessage struct {
	ID               string     `json:"id"`
	From             flexString `json:"from"`
	FromUserID       string     `json:"from_user_id"`
	FromParentUserID string     `json:"from_parent_user_id"`
	Timestamp        flexTime   `json:"timestamp"`
	Type             string     `json:"type"`
	Context          *struct {
		ID string `json:"id"`
	} `json:"context"`
	Interactive *struct {
		Type  string `json:"type"`
		Reply *struct {
			Response       string   `json:"response"`
			IsPermanent    flexBool `json:"is_permanent"`
			Expiration     flexTime `json:"expiration_timestamp"`
			ResponseSource string   `json:"response_source"`
		} `json:"call_permission_reply"`
	} `json:"interactive"`
	Referral json.RawMessage `json:"referral"`
	System   *struct {
		Type string `json:"type"`
		wireIdentity
	} `json:"system"`
	Errors []wireError `json:"errors"`
	wireIdentity
}

// userKey identifies the user an event is about, to find its contact.
type userKey struct{ waID, userID, parentID string }

func (b *parser) addCallsOrMessages(where string, base Event, value json.RawMessage) {
	var fast struct {
		Metadata *wireMetadata     `json:"metadata"`
		Contacts []json.RawMessage `json:"contacts"`
		Calls    []json.RawMessage `json:"calls"`
		Statuses []json.RawMessage `json:"statuses"`
		Messages []json.RawMessage `json:"messages"`
		Errors   []json.RawMessage `json:"errors"`
	}
	var lists [5][]json.RawMessage // contacts, errors, calls, statuses, messages
	if !b.slow && decodeObject(value, &fast, true) == nil {
		if fast.Metadata != nil {
			base.PhoneNumberID, base.DisplayPhoneNumber = string(fast.Metadata.PhoneNumberID), string(fast.Metadata.DisplayPhoneNumber)
		}
		lists = [5][]json.RawMessage{fast.Contacts, fast.Errors, fast.Calls, fast.Statuses, fast.Messages}
	} else {
		var v wireValue
		if err := decodeObject(value, &v, true); err != nil {
			b.skip(where, err)
			return
		}
		var md wireMetadata
		if err := decodeObject(v.Metadata, &md, true); err != nil {
			// Without metadata the change cannot be routed to a number.
			b.skip(where, fieldErr("metadata", err))
			return
		}
		base.PhoneNumberID, base.DisplayPhoneNumber = string(md.PhoneNumberID), string(md.DisplayPhoneNumber)
		for i, l := range []struct {
			name string
			raw  json.RawMessage
		}{{"contacts", v.Contacts}, {"errors", v.Errors}, {"calls", v.Calls}, {"statuses", v.Statuses}, {"messages", v.Messages}} {
			items, err := decodeList(l.raw)
			if err != nil {
				b.skip(where, fieldErr(l.name, err))
			}
			lists[i] = items
		}
	}
	contacts := b.contacts(where, lists[0])
	valueErrs := b.errorList(where, lists[1])
	before := len(b.Events)
	field := base.Field

	emit := func(ev Event, raw json.RawMessage, ts time.Time, k userKey) {
		ev.Raw = raw
		if !ts.IsZero() {
			ev.Timestamp = ts
		}
		if len(contacts) > 0 {
			ev.Contacts = append([]Contact(nil), contacts...)
			ev.ContactName, ev.ContactUsername = matchContact(contacts, k)
		}
		b.Events = append(b.Events, ev)
	}

	calls := 0
	b.eachItem(where, "calls", lists[2], func(iw string, item json.RawMessage) error {
		var w wireCall
		if err := json.Unmarshal(item, &w); err != nil {
			return err
		}
		ev := base
		c := w.toEvent(valueErrs)
		ev.Call = c
		calls++
		emit(ev, cloneRaw(item), c.Timestamp, userKey{c.UserNumber(), c.UserID(), c.UserParentID()})
		return nil
	})
	b.eachItem(where, "statuses", lists[3], func(iw string, item json.RawMessage) error {
		var w wireStatus
		if err := json.Unmarshal(item, &w); err != nil {
			return err
		}
		ev := base
		k := userKey{string(w.RecipientID), w.RecipientUserID, w.RecipientParentUserID}
		// Call statuses carry type "call"; message statuses carry "message"
		// or, in the messages field, no type at all.
		if strings.EqualFold(w.Type, "call") || (w.Type == "" && field == FieldCalls) {
			ev.Status = w.toCallStatus()
		} else {
			ev.MessageStatus = w.toMessageStatus()
		}
		emit(ev, cloneRaw(item), w.Timestamp.t, k)
		return nil
	})
	b.eachItem(where, "messages", lists[4], func(iw string, item json.RawMessage) error {
		var w wireMessage
		if err := json.Unmarshal(item, &w); err != nil {
			return err
		}
		ev := base
		raw := cloneRaw(item)
		k := userKey{string(w.From), w.FromUserID, w.FromParentUserID}
		switch {
		case w.Interactive != nil && strings.EqualFold(w.Interactive.Type, "call_permission_reply"):
			ev.Permission = w.toPermission()
		case strings.EqualFold(w.Type, "system") || (w.Type == "" && w.System != nil):
			if ic := w.toIdentityChange(); ic != nil {
				ev.IdentityChange = ic
			} else {
				typ := ""
				if w.System != nil {
					typ = w.System.Type
				}
				ev.Unknown = &UnknownEvent{Field: field, Type: "message:system:" + typ, Raw: raw}
			}
		default:
			ev.UserMessage = w.toUserMessage()
		}
		emit(ev, raw, w.Timestamp.t, k)
		return nil
	})
	if len(valueErrs) > 0 && calls == 0 {
		// Errors of a change with no call: nothing to attach them to.
		ev := base
		raw := cloneRaw(value)
		ev.Unknown = &UnknownEvent{Field: field, Type: "errors", Raw: raw, Errors: valueErrs}
		emit(ev, raw, time.Time{}, userKey{})
	}
	if len(b.Events) == before && !b.skippedUnder(where) {
		// Nothing we recognise: keep the change so it is acknowledged, not lost.
		ev := base
		raw := cloneRaw(value)
		ev.Unknown = &UnknownEvent{Field: field, Raw: raw}
		emit(ev, raw, time.Time{}, userKey{})
	}
}

// skippedUnder reports whether something under where was skipped.
func (b *parser) skippedUnder(where string) bool {
	for _, s := range b.Skipped {
		if s.Where == where || strings.HasPrefix(s.Where, where+".") {
			return true
		}
	}
	return false
}

// eachItem runs fn on every object of the list value.<name>; an item that
// is not an object or an item fn fails on is recorded in Skipped.
func (b *parser) eachItem(where, name string, items []json.RawMessage, fn func(where string, item json.RawMessage) error) {
	for k, item := range items {
		iw := fmt.Sprintf("%s.%s[%d]", where, name, k)
		if t := bytes.TrimSpace(item); len(t) == 0 || t[0] != '{' {
			b.skip(iw, &json.UnmarshalTypeError{Value: jsonKind(t), Type: reflect.TypeFor[struct{}]()})
			continue
		}
		if err := fn(iw, item); err != nil {
			b.skip(iw, err)
		}
	}
}

func (b *parser) contacts(where string, raw []json.RawMessage) []Contact {
	var out []Contact
	b.eachItem(where, "contacts", raw, func(_ string, item json.RawMessage) error {
		var w wireContact
		if err := json.Unmarshal(item, &w); err != nil {
			return err
		}
		out = append(out, Contact{WaID: string(w.WaID), UserID: w.UserID, ParentUserID: w.ParentUserID,
			Name: w.Profile.Name, Username: w.Profile.Username})
		return nil
	})
	return out
}

func (b *parser) errorList(where string, raw []json.RawMessage) []MetaError {
	var out []MetaError
	b.eachItem(where, "errors", raw, func(_ string, item json.RawMessage) error {
		var w wireError
		if err := json.Unmarshal(item, &w); err != nil {
			return err
		}
		out = appendErrors(out, []wireError{w})
		return nil
	})
	return out
}

func (w *wireCall) toEvent(valueErrs []MetaError) *CallEvent {
	c := &CallEvent{
		CallID:           w.ID,
		Event:            parseCallEventType(w.Event),
		EventName:        w.Event,
		Direction:        call.ParseDirection(w.Direction),
		From:             string(w.From),
		To:               string(w.To),
		FromUserID:       w.FromUserID,
		FromParentUserID: w.FromParentUserID,
		ToUserID:         w.ToUserID,
		ToParentUserID:   w.ToParentUserID,
		Timestamp:        w.Timestamp.t,
		Status:           strings.ToUpper(w.Status),
		StartTime:        w.StartTime.t,
		EndTime:          w.EndTime.t,
		Duration:         -1,
		Errors:           appendErrors(append([]MetaError(nil), valueErrs...), w.Errors),
		BizOpaque:        w.BizOpaque,
		DeeplinkPayload:  w.DeeplinkPayload,
		CTAPayload:       w.CTAPayload,
	}
	if w.Session != nil {
		c.SDPType = strings.ToLower(w.Session.SDPType)
		c.SDP = w.Session.SDP
	}
	if c.Event == CallConnect && c.Direction == call.DirectionUnknown {
		switch c.SDPType {
		case "offer":
			c.Direction, c.DirectionGuessed = call.UserInitiated, true
		case "answer":
			c.Direction, c.DirectionGuessed = call.BusinessInitiated, true
		}
	}
	if w.Duration.set {
		c.Duration = w.Duration.v
		if !c.StartTime.IsZero() && !c.EndTime.IsZero() {
			c.DurationMismatch = c.Duration != c.EndTime.Unix()-c.StartTime.Unix()
		}
	}
	switch c.Event {
	case CallRecordingAvailable:
		c.Media = pickMedia(w.CallRecording, MediaAudio)
	case CallTranscriptionAvailable:
		h := w.CallTranscript
		if h == nil {
			h = w.CallTranscription
		}
		c.Media = pickMedia(h, MediaDocument)
	}
	return c
}

// pickMedia takes the preferred object of h, else the other one.
func pickMedia(h *wireMediaHolder, prefer MediaKind) *MediaRef {
	if h == nil {
		return nil
	}
	objs := []struct {
		k MediaKind
		m *wireMedia
	}{{MediaAudio, h.Audio}, {MediaDocument, h.Document}}
	if prefer == MediaDocument {
		objs[0], objs[1] = objs[1], objs[0]
	}
	for _, o := range objs {
		if o.m != nil {
			return &MediaRef{Kind: o.k, ID: o.m.ID, SHA256: o.m.SHA256, MimeType: o.m.MimeType, URL: o.m.URL}
		}
	}
	return nil
}

func (w *wireStatus) toCallStatus() *StatusEvent {
	return &StatusEvent{
		CallID:                w.ID,
		Status:                parseCallStatus(w.Status),
		StatusName:            w.Status,
		Timestamp:             w.Timestamp.t,
		RecipientID:           string(w.RecipientID),
		RecipientUserID:       w.RecipientUserID,
		RecipientParentUserID: w.RecipientParentUserID,
		BizOpaque:             w.BizOpaque,
		Errors:                appendErrors(nil, w.Errors),
	}
}

func (w *wireStatus) toMessageStatus() *MessageStatus {
	m := &MessageStatus{
		MessageID:             w.ID,
		Status:                parseDeliveryStatus(w.Status),
		StatusName:            w.Status,
		Timestamp:             w.Timestamp.t,
		RecipientID:           string(w.RecipientID),
		RecipientUserID:       w.RecipientUserID,
		RecipientParentUserID: w.RecipientParentUserID,
		Errors:                appendErrors(nil, w.Errors),
		BizOpaque:             w.BizOpaque,
	}
	if p := w.Pricing; p != nil {
		m.Pricing = &Pricing{Billable: bool(p.Billable), Model: p.PricingModel, Type: p.Type, Category: normaliseCategory(p.Category)}
	}
	if c := w.Conversation; c != nil {
		m.ConversationID, m.ConversationExpiresAt = c.ID, c.Expiration.t
		if c.Origin != nil {
			m.ConversationOrigin = c.Origin.Type
		}
	}
	return m
}

// normaliseCategory maps Meta's hyphenated authentication-international to
// the documented spelling; everything else is kept as sent.
func normaliseCategory(s string) string {
	if strings.EqualFold(s, "authentication-international") {
		return "authentication_international"
	}
	return s
}

func (w *wireMessage) toPermission() *PermissionReply {
	p := &PermissionReply{
		From:             string(w.From),
		FromUserID:       w.FromUserID,
		FromParentUserID: w.FromParentUserID,
		MessageID:        w.ID,
		Timestamp:        w.Timestamp.t,
	}
	if r := w.Interactive.Reply; r != nil {
		p.Accepted = strings.EqualFold(r.Response, "accept")
		p.Permanent = bool(r.IsPermanent)
		p.ExpiresAt = r.Expiration.t
		p.Source = strings.ToLower(r.ResponseSource)
	}
	if w.Context != nil {
		p.ContextID = w.Context.ID
	}
	automatic := p.Source == "automatic"
	p.AutomaticRevoke = automatic && !p.Accepted && p.ContextID == ""
	p.CallbackGrant = automatic && p.Accepted && p.ContextID != ""
	return p
}

func (w *wireMessage) toUserMessage() *UserMessage {
	typ := w.Type
	if w.Interactive != nil && w.Interactive.Type != "" {
		if typ == "" {
			typ = "interactive"
		}
		typ += ":" + w.Interactive.Type
	}
	m := &UserMessage{
		MessageID:        w.ID,
		From:             string(w.From),
		FromUserID:       w.FromUserID,
		FromParentUserID: w.FromParentUserID,
		Timestamp:        w.Timestamp.t,
		Type:             typ,
		Referral:         !isNull(w.Referral),
		Errors:           appendErrors(nil, w.Errors),
	}
	if w.Context != nil {
		m.ContextID = w.Context.ID
	}
	return m
}

// toIdentityChange reads a system message; nil when it is not an identity
// change. Fields are taken from system{} first, then from the message.
func (w *wireMessage) toIdentityChange() *IdentityChange {
	var sys wireIdentity
	name := ""
	if w.System != nil {
		sys, name = w.System.wireIdentity, w.System.Type
	}
	kind := parseIdentityChangeKind(name)
	if kind == IdentityChangeUnknown {
		return nil
	}
	msg := w.wireIdentity
	return &IdentityChange{
		Kind:                 kind,
		KindName:             name,
		MessageID:            w.ID,
		From:                 string(w.From),
		FromUserID:           w.FromUserID,
		FromParentUserID:     w.FromParentUserID,
		NewWaID:              first(string(sys.WaID), string(sys.NewWaID), string(msg.WaID), string(msg.NewWaID)),
		NewUserID:            first(sys.NewUserID, sys.UserID, msg.NewUserID, msg.UserID, w.FromUserID),
		NewParentUserID:      first(sys.NewParentUserID, sys.ParentUserID, msg.NewParentUserID, msg.ParentUserID, w.FromParentUserID),
		PreviousUserID:       first(sys.PreviousUserID, msg.PreviousUserID),
		PreviousParentUserID: first(sys.PreviousParentUserID, msg.PreviousParentUserID),
		Body:                 first(sys.Body, msg.Body),
		Timestamp:            w.Timestamp.t,
	}
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Account fields.

type wirePhoneSettings struct {
	PhoneNumberID flexString      `json:"phone_number_id"`
	Calling       json.RawMessage `json:"calling"`
}

type wireSettingsValue struct {
	Type                string             `json:"type"`
	Timestamp           flexTime           `json:"timestamp"`
	Metadata            *wireMetadata      `json:"metadata"`
	PhoneNumberSettings *wirePhoneSettings `json:"phone_number_settings"`
	PhoneNumber         flexString         `json:"phone_number"`
}

type wireCalling struct {
	Status                   string `json:"status"`
	CallIconVisibility       string `json:"call_icon_visibility"`
	CallbackPermissionStatus string `json:"callback_permission_status"`
	SIP                      *struct {
		Status string `json:"status"`
	} `json:"sip"`
	SRTPKeyExchangeProtocol string `json:"srtp_key_exchange_protocol"`
}

type wireAccountValue struct {
	wireSettingsValue
	Event         string `json:"event"`
	ViolationType string `json:"violation_type"`
	ViolationInfo *struct {
		ViolationType string `json:"violation_type"`
	} `json:"violation_info"`
	RestrictionInfo []struct {
		RestrictionType string        `json:"restriction_type"`
		Expiration      flexTimeLoose `json:"expiration"`
	} `json:"restriction_info"`
}

// route fills base's number and timestamp from an account field's value.
func (w *wireSettingsValue) route(base *Event) {
	if w.Metadata != nil {
		base.PhoneNumberID, base.DisplayPhoneNumber = string(w.Metadata.PhoneNumberID), string(w.Metadata.DisplayPhoneNumber)
	}
	if base.PhoneNumberID == "" && w.PhoneNumberSettings != nil {
		base.PhoneNumberID = string(w.PhoneNumberSettings.PhoneNumberID)
	}
	if base.PhoneNumberID == "" {
		base.PhoneNumberID = string(w.PhoneNumber)
	}
	if !w.Timestamp.t.IsZero() {
		base.Timestamp = w.Timestamp.t
	}
}

func (b *parser) addSettings(where string, base Event, value json.RawMessage) {
	var w wireSettingsValue
	if err := decodeObject(value, &w, true); err != nil {
		b.skip(where, err)
		return
	}
	s := &SettingsUpdate{Type: w.Type, Raw: cloneRaw(value)}
	if w.PhoneNumberSettings != nil {
		s.PhoneNumberID = string(w.PhoneNumberSettings.PhoneNumberID)
		if !isNull(w.PhoneNumberSettings.Calling) {
			var c wireCalling
			if err := decodeObject(w.PhoneNumberSettings.Calling, &c, true); err != nil {
				b.skip(where, fieldErr("phone_number_settings.calling", err))
				return
			}
			s.Calling = cloneRaw(w.PhoneNumberSettings.Calling)
			s.Status, s.CallIconVisibility, s.CallbackPermissionStatus = c.Status, c.CallIconVisibility, c.CallbackPermissionStatus
			s.SRTPKeyExchangeProtocol = c.SRTPKeyExchangeProtocol
			if c.SIP != nil {
				s.SIPStatus = c.SIP.Status
			}
		}
	}
	w.route(&base)
	if s.PhoneNumberID == "" {
		s.PhoneNumberID = base.PhoneNumberID
	}
	base.Raw, base.SettingsUpdate = s.Raw, s
	b.Events = append(b.Events, base)
}

func (b *parser) addAccount(where string, base Event, value json.RawMessage) {
	var w wireAccountValue
	if err := decodeObject(value, &w, true); err != nil {
		b.skip(where, err)
		return
	}
	a := &AccountUpdate{Event: w.Event, PhoneNumber: string(w.PhoneNumber), ViolationType: w.ViolationType, Raw: cloneRaw(value)}
	if w.ViolationInfo != nil && w.ViolationInfo.ViolationType != "" {
		a.ViolationType = w.ViolationInfo.ViolationType
	}
	for _, r := range w.RestrictionInfo {
		a.Restrictions = append(a.Restrictions, Restriction{Type: r.RestrictionType, Expiration: r.Expiration.t})
	}
	w.route(&base)
	base.Raw, base.AccountUpdate = a.Raw, a
	b.Events = append(b.Events, base)
}

// Helpers.

// appendErrors appends ws to out, once per code: a repeated code only fills
// the texts the first one lacked.
func appendErrors(out []MetaError, ws []wireError) []MetaError {
next:
	for _, w := range ws {
		code := 0
		if w.Code.set {
			code = int(w.Code.v)
		}
		m := MetaError{Code: code, Title: w.Title, Message: w.Message, Details: w.ErrorData.Details, Href: w.Href}
		for i := range out {
			if e := &out[i]; e.Code == code {
				e.Title, e.Message = first(e.Title, m.Title), first(e.Message, m.Message)
				e.Details, e.Href = first(e.Details, m.Details), first(e.Href, m.Href)
				continue next
			}
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func matchContact(cs []Contact, k userKey) (name, username string) {
	for _, c := range cs {
		if (k.waID != "" && c.WaID == k.waID) || (k.userID != "" && c.UserID == k.userID) ||
			(k.parentID != "" && c.ParentUserID == k.parentID) {
			return c.Name, c.Username
		}
	}
	if len(cs) == 1 {
		return cs[0].Name, cs[0].Username
	}
	return "", ""
}

// cloneRaw copies a RawMessage so the Batch does not alias the caller's body.
func cloneRaw(r json.RawMessage) json.RawMessage {
	if r == nil {
		return nil
	}
	return bytes.Clone(r)
}

func isNull(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) == 0 || string(t) == "null"
}

// jsonKind names the JSON type of a value for error messages.
func jsonKind(b []byte) string {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// fieldError marks an error as being about one named field.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func fieldErr(field string, err error) error { return &fieldError{field, err} }

// describe turns a decode error into Skipped's Field and Reason.
func describe(err error) (field, reason string) {
	var fe *fieldError
	if errors.As(err, &fe) {
		field = fe.field
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			if field != "" {
				field += "." + te.Field
			} else {
				field = te.Field
			}
		}
		return field, "want " + typeName(te.Type) + ", got " + te.Value
	}
	return field, err.Error()
}

var (
	typeFlexTime   = reflect.TypeFor[flexTime]()
	typeFlexLoose  = reflect.TypeFor[flexTimeLoose]()
	typeFlexInt    = reflect.TypeFor[flexInt]()
	typeFlexBool   = reflect.TypeFor[flexBool]()
	typeFlexString = reflect.TypeFor[flexString]()
)

func typeName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t {
	case typeFlexTime:
		return "epoch seconds"
	case typeFlexLoose:
		return "epoch seconds or RFC 3339 time"
	case typeFlexInt:
		return "integer"
	case typeFlexBool:
		return "boolean"
	case typeFlexString:
		return "string or number"
	}
	switch t.Kind() {
	case reflect.Slice:
		return "array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "object"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	}
	return t.Kind().String()
}

// typeErr is what the flexible types return, so encoding/json adds the
// field path.
func typeErr(value string, t reflect.Type) error {
	return &json.UnmarshalTypeError{Value: value, Type: t}
}

// flexTime is epoch seconds sent as a JSON number or string; null, "" and
// absence leave it zero.
type flexTime struct{ t time.Time }

// maxEpoch bounds accepted epoch seconds (year 9999) so times stay sane.
const maxEpoch = 253402300799

func (f *flexTime) UnmarshalJSON(b []byte) error {
	n, ok, err := parseFlexInt(b)
	if err != nil {
		return typeErr(err.Error(), typeFlexTime)
	}
	if !ok {
		return nil
	}
	if n < 0 || n > maxEpoch {
		return typeErr(fmt.Sprintf("%d (out of range)", n), typeFlexTime)
	}
	f.t = time.Unix(n, 0).UTC()
	return nil
}

// flexTimeLoose is a flexTime that also accepts an RFC 3339 string (account
// restriction expirations are not documented precisely).
type flexTimeLoose struct{ t time.Time }

func (f *flexTimeLoose) UnmarshalJSON(b []byte) error {
	var ft flexTime
	err := ft.UnmarshalJSON(b)
	if err == nil {
		f.t = ft.t
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if t, perr := time.Parse(time.RFC3339, strings.TrimSpace(s)); perr == nil {
			f.t = t.UTC()
			return nil
		}
	}
	return typeErr(describeValue(b), typeFlexLoose)
}

// flexInt is an integer sent as a JSON number or string.
type flexInt struct {
	v   int64
	set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	n, ok, err := parseFlexInt(b)
	if err != nil {
		return typeErr(err.Error(), typeFlexInt)
	}
	if ok {
		f.v, f.set = n, true
	}
	return nil
}

// parseFlexInt reads an integer from a JSON number or string. ok is false for
// null or "". A number with a fraction or exponent is accepted when whole.
// The error text describes the value ("object", `string "yesterday"`).
func parseFlexInt(b []byte) (n int64, ok bool, err error) {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return 0, false, nil
	}
	if s == "" || s[0] == '{' || s[0] == '[' || s[0] == 't' || s[0] == 'f' {
		return 0, false, errors.New(jsonKind(b))
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return 0, false, errors.New("string")
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
		return 0, false, fmt.Errorf("%q (not an integer)", truncate(s, 32))
	}
	return int64(fl), true, nil
}

func describeValue(b []byte) string {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && (t[0] == '"' || (t[0] >= '0' && t[0] <= '9') || t[0] == '-') {
		return truncate(string(t), 34)
	}
	return jsonKind(t)
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
		return typeErr(describeValue(b), typeFlexBool)
	}
	return nil
}

// flexString is an id or phone number sent as a JSON string or number; the
// number's digits are kept exactly as sent.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	t := bytes.TrimSpace(b)
	switch {
	case len(t) == 0 || string(t) == "null":
		return nil
	case t[0] == '"':
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return typeErr("string", typeFlexString)
		}
		*f = flexString(s)
		return nil
	case t[0] == '-' || (t[0] >= '0' && t[0] <= '9'):
		*f = flexString(t)
		return nil
	}
	return typeErr(jsonKind(t), typeFlexString)
}
