package webhook

import (
	"encoding/json"
	"time"

	"github.com/callgw/callgw/call"
)

// Batch is one webhook delivery, flattened.
type Batch struct {
	// Events in delivery order: entry by entry, change by change; inside one
	// change of field calls or messages: calls[], then statuses[], then
	// messages[], then value-level errors (only when no call carries them).
	Events []Event `json:",omitzero"`
	// Skipped lists what Parse dropped because a known field had an
	// impossible type; everything else in the delivery is in Events.
	Skipped []Skipped `json:",omitzero"`
}

// Skipped is one entry, change or item Parse could not read. Its siblings
// are still parsed.
type Skipped struct {
	// Where is the path of what was dropped, e.g. "entry[0].changes[1].calls[2]".
	Where string `json:",omitzero"`
	// Field is the offending JSON field inside it ("timestamp",
	// "session.sdp", "calls"); "" when the whole thing has the wrong type.
	Field string `json:",omitzero"`
	// Reason says what was wrong, e.g. `want epoch seconds, got object`.
	Reason string `json:",omitzero"`
}

// Event is one update. Exactly one of Call, Status, Permission,
// MessageStatus, UserMessage, IdentityChange, SettingsUpdate, AccountUpdate
// and Unknown is set.
type Event struct {
	WABAID string `json:",omitzero"` // entry[].id
	// PhoneNumberID routes the event to a business number:
	// value.metadata.phone_number_id, or for account fields
	// phone_number_settings.phone_number_id, else phone_number.
	PhoneNumberID      string `json:",omitzero"`
	DisplayPhoneNumber string `json:",omitzero"` // value.metadata.display_phone_number
	Field              string `json:",omitzero"` // changes[].field ("calls", "messages", "account_update", ...)
	// Timestamp is the item's own timestamp (string or integer epoch), else
	// entry[].time; zero when neither is sent. Judge staleness by it.
	Timestamp time.Time `json:",omitzero"`

	// Contacts is value.contacts[], in order (a copy per event).
	Contacts []Contact `json:",omitzero"`
	// ContactName and ContactUsername are profile.name and profile.username
	// of the contact matching the event's user (by wa_id, user_id or
	// parent_user_id); the only contact's if just one; else "".
	ContactName     string `json:",omitzero"`
	ContactUsername string `json:",omitzero"`

	// Raw is the item's JSON as received (a copy, not a slice of the body):
	// the calls[]/statuses[]/messages[] item, or the whole value for account
	// fields, unknown fields and value-level errors.
	Raw json.RawMessage `json:",omitzero"`

	Call           *CallEvent       `json:",omitzero"`
	Status         *StatusEvent     `json:",omitzero"`
	Permission     *PermissionReply `json:",omitzero"`
	MessageStatus  *MessageStatus   `json:",omitzero"`
	UserMessage    *UserMessage     `json:",omitzero"`
	IdentityChange *IdentityChange  `json:",omitzero"`
	SettingsUpdate *SettingsUpdate  `json:",omitzero"`
	AccountUpdate  *AccountUpdate   `json:",omitzero"`
	Unknown        *UnknownEvent    `json:",omitzero"`
}

// Contact is one value.contacts[] item. Omitted fields are "".
type Contact struct {
	WaID         string `json:",omitzero"` // wa_id (phone digits; absent for username users)
	UserID       string `json:",omitzero"` // user_id (BSUID, "US.1349...")
	ParentUserID string `json:",omitzero"` // parent_user_id (parent BSUID, "US.ENT.118...")
	Name         string `json:",omitzero"` // profile.name
	Username     string `json:",omitzero"` // profile.username
}

// CallEvent is a calls[] item (field "calls").
type CallEvent struct {
	CallID    string         `json:",omitzero"` // id ("wacid....")
	Event     CallEventType  `json:",omitzero"` // event
	EventName string         `json:",omitzero"` // event as sent, for logging unknown events
	Direction call.Direction `json:",omitzero"` // direction: USER_INITIATED / BUSINESS_INITIATED
	// DirectionGuessed is true when direction was absent (or unknown) on a
	// connect and Direction was derived from session.sdp_type (offer: user
	// initiated, answer: business initiated). The consumer can confirm it
	// with "did we create this wacid".
	DirectionGuessed bool      `json:",omitzero"`
	From, To         string    `json:",omitzero"` // digits as sent, no '+'; either may be absent (username users)
	FromUserID       string    `json:",omitzero"` // from_user_id (BSUID)
	FromParentUserID string    `json:",omitzero"` // from_parent_user_id
	ToUserID         string    `json:",omitzero"` // to_user_id (BSUID)
	ToParentUserID   string    `json:",omitzero"` // to_parent_user_id
	Timestamp        time.Time `json:",omitzero"` // timestamp (epoch seconds, string or number); zero when absent

	SDPType string `json:",omitzero"` // session.sdp_type: "offer" | "answer" (lower-cased)
	SDP     string `json:",omitzero"` // session.sdp

	Status           string    `json:",omitzero"` // terminate: "COMPLETED" | "FAILED" (upper-cased; sent in either case)
	StartTime        time.Time `json:",omitzero"` // terminate start_time; zero when absent (call not picked up)
	EndTime          time.Time `json:",omitzero"` // terminate end_time; zero when absent
	Duration         int64     `json:",omitzero"` // terminate duration in seconds; -1 when absent
	DurationMismatch bool      `json:",omitzero"` // duration, start and end present and duration != end-start

	// Errors are value.errors[] of the change (Meta's place) followed by the
	// call's own errors[], identical codes once.
	Errors []MetaError `json:",omitzero"`

	// Media is call_recording.audio (CallRecordingAvailable) or
	// call_transcript.document (CallTranscriptionAvailable); nil otherwise.
	Media *MediaRef `json:",omitzero"`

	BizOpaque       string `json:",omitzero"` // biz_opaque_callback_data
	DeeplinkPayload string `json:",omitzero"` // deeplink_payload (untrusted)
	CTAPayload      string `json:",omitzero"` // cta_payload (untrusted)
}

// UserNumber is the WhatsApp user's number (digits as sent): To for a
// business-initiated call, else From. "" when Meta withheld it.
func (c *CallEvent) UserNumber() string {
	if c.Direction == call.BusinessInitiated {
		return c.To
	}
	return c.From
}

// UserID is the WhatsApp user's BSUID: ToUserID for a business-initiated
// call, else FromUserID.
func (c *CallEvent) UserID() string {
	if c.Direction == call.BusinessInitiated {
		return c.ToUserID
	}
	return c.FromUserID
}

// UserParentID is the WhatsApp user's parent BSUID: ToParentUserID for a
// business-initiated call, else FromParentUserID.
func (c *CallEvent) UserParentID() string {
	if c.Direction == call.BusinessInitiated {
		return c.ToParentUserID
	}
	return c.FromParentUserID
}

// MediaRef points at a recording or transcript in Meta's Media API. URL is
// valid for 5 minutes; fetch a fresh one by ID afterwards; Meta deletes the
// media 7 days after the webhook.
type MediaRef struct {
	Kind     MediaKind `json:",omitzero"` // which object it came from: audio or document
	ID       string    `json:",omitzero"` // id (media id)
	SHA256   string    `json:",omitzero"` // sha256 (base64, as sent)
	MimeType string    `json:",omitzero"` // mime_type
	URL      string    `json:",omitzero"` // url
}

// StatusEvent is a statuses[] item of type "call": progress of a
// business-initiated call.
type StatusEvent struct {
	CallID                string      `json:",omitzero"` // id
	Status                CallStatus  `json:",omitzero"` // status, matched case-insensitively
	StatusName            string      `json:",omitzero"` // status as sent
	Timestamp             time.Time   `json:",omitzero"` // timestamp
	RecipientID           string      `json:",omitzero"` // recipient_id (the user's wa_id); may be absent
	RecipientUserID       string      `json:",omitzero"` // recipient_user_id (BSUID)
	RecipientParentUserID string      `json:",omitzero"` // recipient_parent_user_id
	BizOpaque             string      `json:",omitzero"` // biz_opaque_callback_data
	Errors                []MetaError `json:",omitzero"` // errors[]
}

// PermissionReply is a messages[] item whose interactive.type is
// call_permission_reply (whatever the message-level type): the user's answer
// to a call-permission request, a callback grant, or an automatic revocation.
type PermissionReply struct {
	From             string    `json:",omitzero"` // from (the user's wa_id); may be absent
	FromUserID       string    `json:",omitzero"` // from_user_id (BSUID)
	FromParentUserID string    `json:",omitzero"` // from_parent_user_id
	MessageID        string    `json:",omitzero"` // id (wamid)
	Timestamp        time.Time `json:",omitzero"` // timestamp
	Accepted         bool      `json:",omitzero"` // response == "accept" (case-insensitive); false for "reject"
	Permanent        bool      `json:",omitzero"` // is_permanent
	ExpiresAt        time.Time `json:",omitzero"` // expiration_timestamp (integer or string epoch seconds); zero when absent
	Source           string    `json:",omitzero"` // response_source, lower-cased: "user_action" | "automatic"
	ContextID        string    `json:",omitzero"` // context.id: our request's wamid, or a wacid for a callback grant; "" when absent
	// AutomaticRevoke: reject + automatic + no context, Meta's revocation
	// after 4 consecutive unanswered (or rejected) calls.
	AutomaticRevoke bool `json:",omitzero"`
	// CallbackGrant: accept + automatic + context.id, a grant given when the
	// user called us (ContextID is then that call's wacid).
	CallbackGrant bool `json:",omitzero"`
}

// MessageStatus is a statuses[] item about a message we sent (field
// "messages", any type but "call"): permission requests, call buttons,
// templates.
type MessageStatus struct {
	MessageID             string         `json:",omitzero"` // id (wamid)
	Status                DeliveryStatus `json:",omitzero"` // status, matched case-insensitively
	StatusName            string         `json:",omitzero"` // status as sent
	Timestamp             time.Time      `json:",omitzero"` // timestamp
	RecipientID           string         `json:",omitzero"` // recipient_id; may be absent
	RecipientUserID       string         `json:",omitzero"` // recipient_user_id (BSUID)
	RecipientParentUserID string         `json:",omitzero"` // recipient_parent_user_id
	// Pricing is the per-message billing truth; nil when not sent.
	Pricing *Pricing `json:",omitzero"`
	// ConversationID and ConversationOrigin are conversation.id and
	// conversation.origin.type of the legacy conversation-based model (CBP);
	// ConversationExpiresAt is conversation.expiration_timestamp.
	ConversationID        string      `json:",omitzero"`
	ConversationOrigin    string      `json:",omitzero"`
	ConversationExpiresAt time.Time   `json:",omitzero"`
	Errors                []MetaError `json:",omitzero"` // errors[] (failed statuses)
	BizOpaque             string      `json:",omitzero"` // biz_opaque_callback_data
}

// Pricing is a message status's pricing object, stored as sent.
type Pricing struct {
	Billable bool   `json:",omitzero"` // billable (boolean or "true"/"false")
	Model    string `json:",omitzero"` // pricing_model as sent: "PMP", legacy "CBP"
	Type     string `json:",omitzero"` // type as sent: "regular" | "free_customer_service" | "free_entry_point" | ...
	// Category as sent ("marketing", "utility", "authentication",
	// "service", "referral_conversion", ...), except that the hyphenated
	// "authentication-international" is normalised to
	// "authentication_international".
	Category string `json:",omitzero"`
}

// UserMessage is an inbound messages[] item from a user that is neither a
// permission reply nor a system message. It opens (or refreshes) the 24 h
// customer service window.
type UserMessage struct {
	MessageID        string    `json:",omitzero"` // id (wamid)
	From             string    `json:",omitzero"` // from; may be absent (username users)
	FromUserID       string    `json:",omitzero"` // from_user_id (BSUID)
	FromParentUserID string    `json:",omitzero"` // from_parent_user_id
	Timestamp        time.Time `json:",omitzero"` // timestamp
	// Type is the message type as sent, with interactive.type appended:
	// "text", "interactive:button_reply", "button", "image", "unsupported", ...
	Type string `json:",omitzero"`
	// Referral is true when the message has a referral object: the user came
	// from a Click-to-WhatsApp ad or a Page CTA (free entry point).
	Referral  bool        `json:",omitzero"`
	ContextID string      `json:",omitzero"` // context.id: the message this one replies to; "" when absent
	Errors    []MetaError `json:",omitzero"` // errors[] (e.g. on type "unsupported")
}

// IdentityChange is a system message telling that a user changed phone
// number or BSUID: re-key permissions, billing and history on it.
type IdentityChange struct {
	Kind             IdentityChangeKind `json:",omitzero"` // system.type
	KindName         string             `json:",omitzero"` // system.type as sent
	MessageID        string             `json:",omitzero"` // id
	From             string             `json:",omitzero"` // from (the number the message came from)
	FromUserID       string             `json:",omitzero"` // from_user_id
	FromParentUserID string             `json:",omitzero"` // from_parent_user_id
	// NewWaID is the user's new number: system.wa_id or system.new_wa_id.
	NewWaID string `json:",omitzero"`
	// NewUserID and NewParentUserID are the user's BSUIDs after the change:
	// system.new_user_id / user_id (parent likewise), else from_user_id /
	// from_parent_user_id.
	NewUserID            string    `json:",omitzero"`
	NewParentUserID      string    `json:",omitzero"`
	PreviousUserID       string    `json:",omitzero"` // system.previous_user_id
	PreviousParentUserID string    `json:",omitzero"` // system.previous_parent_user_id
	Body                 string    `json:",omitzero"` // system.body (human-readable)
	Timestamp            time.Time `json:",omitzero"` // timestamp
}

// SettingsUpdate is an account_settings_update change (value.type
// PHONE_NUMBER_SETTINGS): the number's settings changed, possibly by us.
type SettingsUpdate struct {
	Type          string `json:",omitzero"` // value.type as sent, e.g. "PHONE_NUMBER_SETTINGS"
	PhoneNumberID string `json:",omitzero"` // phone_number_settings.phone_number_id, else metadata.phone_number_id
	// Calling is phone_number_settings.calling (the GET /settings shape);
	// nil when absent. The fields below are read from it.
	Calling                  json.RawMessage `json:",omitzero"`
	Status                   string          `json:",omitzero"` // calling.status: ENABLED | DISABLED
	CallIconVisibility       string          `json:",omitzero"` // calling.call_icon_visibility
	CallbackPermissionStatus string          `json:",omitzero"` // calling.callback_permission_status
	SIPStatus                string          `json:",omitzero"` // calling.sip.status (callgw needs DISABLED)
	SRTPKeyExchangeProtocol  string          `json:",omitzero"` // calling.srtp_key_exchange_protocol
	Raw                      json.RawMessage `json:",omitzero"` // the whole value
}

// AccountUpdate is an account_update change: violations, restrictions,
// pricing tier updates and other account events.
type AccountUpdate struct {
	// Event as sent: ACCOUNT_VIOLATION, ACCOUNT_RESTRICTION,
	// VOLUME_BASED_PRICING_TIER_UPDATE, ...
	Event         string          `json:",omitzero"`
	PhoneNumber   string          `json:",omitzero"` // phone_number
	ViolationType string          `json:",omitzero"` // violation_info.violation_type (or value-level violation_type)
	Restrictions  []Restriction   `json:",omitzero"` // restriction_info[]
	Raw           json.RawMessage `json:",omitzero"` // the whole value
}

// Restriction is one restriction_info[] item.
type Restriction struct {
	Type       string    `json:",omitzero"` // restriction_type, e.g. RESTRICTED_BUSINESS_INITIATED_CALLING
	Expiration time.Time `json:",omitzero"` // expiration (epoch seconds or RFC 3339); zero when absent
}

// UnknownEvent is an update callgw does not act on (another field, a system
// message of another kind, value-level errors of a change with no call...).
// It is kept so the caller can log and acknowledge it.
type UnknownEvent struct {
	Field string `json:",omitzero"` // changes[].field
	// Type says what it is: "message:system:<type>", "errors", or "" for a
	// whole value of another field.
	Type   string          `json:",omitzero"`
	Raw    json.RawMessage `json:",omitzero"` // the item's JSON as received (a copy; the whole value for an unknown field)
	Errors []MetaError     `json:",omitzero"` // value-level errors[], when Type is "errors"
}

// MetaError is one item of an errors[] array.
type MetaError struct {
	Code    int    `json:",omitzero"`
	Title   string `json:",omitzero"`
	Message string `json:",omitzero"`
	Details string `json:",omitzero"` // error_data.details
	Href    string `json:",omitzero"` // href
}
