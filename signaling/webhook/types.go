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
	Events []Event
	// Skipped lists what Parse dropped because a known field had an
	// impossible type; everything else in the delivery is in Events.
	Skipped []Skipped
}

// Skipped is one entry, change or item Parse could not read. Its siblings
// are still parsed.
type Skipped struct {
	// Where is the path of what was dropped, e.g. "entry[0].changes[1].calls[2]".
	Where string
	// Field is the offending JSON field inside it ("timestamp",
	// "session.sdp", "calls"); "" when the whole thing has the wrong type.
	Field string
	// Reason says what was wrong, e.g. `want epoch seconds, got object`.
	Reason string
}

// Event is one update. Exactly one of Call, Status, Permission,
// MessageStatus, UserMessage, IdentityChange, SettingsUpdate, AccountUpdate
// and Unknown is set.
type Event struct {
	WABAID string // entry[].id
	// PhoneNumberID routes the event to a business number:
	// value.metadata.phone_number_id, or for account fields
	// phone_number_settings.phone_number_id, else phone_number.
	PhoneNumberID      string
	DisplayPhoneNumber string // value.metadata.display_phone_number
	Field              string // changes[].field ("calls", "messages", "account_update", ...)
	// Timestamp is the item's own timestamp (string or integer epoch), else
	// entry[].time; zero when neither is sent. Judge staleness by it.
	Timestamp time.Time

	// Contacts is value.contacts[], in order (a copy per event).
	Contacts []Contact
	// ContactName and ContactUsername are profile.name and profile.username
	// of the contact matching the event's user (by wa_id, user_id or
	// parent_user_id); the only contact's if just one; else "".
	ContactName     string
	ContactUsername string

	// Raw is the item's JSON as received (a copy, not a slice of the body):
	// the calls[]/statuses[]/messages[] item, or the whole value for account
	// fields, unknown fields and value-level errors.
	Raw json.RawMessage

	Call           *CallEvent
	Status         *StatusEvent
	Permission     *PermissionReply
	MessageStatus  *MessageStatus
	UserMessage    *UserMessage
	IdentityChange *IdentityChange
	SettingsUpdate *SettingsUpdate
	AccountUpdate  *AccountUpdate
	Unknown        *UnknownEvent
}

// Contact is one value.contacts[] item. Omitted fields are "".
type Contact struct {
	WaID         string // wa_id (phone digits; absent for username users)
	UserID       string // user_id (BSUID, "US.1349...")
	ParentUserID string // parent_user_id (parent BSUID, "US.ENT.118...")
	Name         string // profile.name
	Username     string // profile.username
}

// CallEvent is a calls[] item (field "calls").
type CallEvent struct {
	CallID    string         // id ("wacid....")
	Event     CallEventType  // event
	EventName string         // event as sent, for logging unknown events
	Direction call.Direction // direction: USER_INITIATED / BUSINESS_INITIATED
	// DirectionGuessed is true when direction was absent (or unknown) on a
	// connect and Direction was derived from session.sdp_type (offer: user
	// initiated, answer: business initiated). The consumer can confirm it
	// with "did we create this wacid".
	DirectionGuessed bool
	From, To         string    // digits as sent, no '+'; either may be absent (username users)
	FromUserID       string    // from_user_id (BSUID)
	FromParentUserID string    // from_parent_user_id
	ToUserID         string    // to_user_id (BSUID)
	ToParentUserID   string    // to_parent_user_id
	Timestamp        time.Time // timestamp (epoch seconds, string or number); zero when absent

	SDPType string // session.sdp_type: "offer" | "answer" (lower-cased)
	SDP     string // session.sdp

	Status           string    // terminate: "COMPLETED" | "FAILED" (upper-cased; sent in either case)
	StartTime        time.Time // terminate start_time; zero when absent (call not picked up)
	EndTime          time.Time // terminate end_time; zero when absent
	Duration         int64     // terminate duration in seconds; -1 when absent
	DurationMismatch bool      // duration, start and end present and duration != end-start

	// Errors are value.errors[] of the change (Meta's place) followed by the
	// call's own errors[], identical codes once.
	Errors []MetaError

	// Media is call_recording.audio (CallRecordingAvailable) or
	// call_transcript.document (CallTranscriptionAvailable); nil otherwise.
	Media *MediaRef

	BizOpaque       string // biz_opaque_callback_data
	DeeplinkPayload string // deeplink_payload (untrusted)
	CTAPayload      string // cta_payload (untrusted)
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
	Kind     MediaKind // which object it came from: audio or document
	ID       string    // id (media id)
	SHA256   string    // sha256 (base64, as sent)
	MimeType string    // mime_type
	URL      string    // url
}

// StatusEvent is a statuses[] item of type "call": progress of a
// business-initiated call.
type StatusEvent struct {
	CallID                string      // id
	Status                CallStatus  // status, matched case-insensitively
	StatusName            string      // status as sent
	Timestamp             time.Time   // timestamp
	RecipientID           string      // recipient_id (the user's wa_id); may be absent
	RecipientUserID       string      // recipient_user_id (BSUID)
	RecipientParentUserID string      // recipient_parent_user_id
	BizOpaque             string      // biz_opaque_callback_data
	Errors                []MetaError // errors[]
}

// PermissionReply is a messages[] item whose interactive.type is
// call_permission_reply (whatever the message-level type): the user's answer
// to a call-permission request, a callback grant, or an automatic revocation.
type PermissionReply struct {
	From             string    // from (the user's wa_id); may be absent
	FromUserID       string    // from_user_id (BSUID)
	FromParentUserID string    // from_parent_user_id
	MessageID        string    // id (wamid)
	Timestamp        time.Time // timestamp
	Accepted         bool      // response == "accept" (case-insensitive); false for "reject"
	Permanent        bool      // is_permanent
	ExpiresAt        time.Time // expiration_timestamp (integer or string epoch seconds); zero when absent
	Source           string    // response_source, lower-cased: "user_action" | "automatic"
	ContextID        string    // context.id: our request's wamid, or a wacid for a callback grant; "" when absent
	// AutomaticRevoke: reject + automatic + no context, Meta's revocation
	// after 4 consecutive unanswered (or rejected) calls.
	AutomaticRevoke bool
	// CallbackGrant: accept + automatic + context.id, a grant given when the
	// user called us (ContextID is then that call's wacid).
	CallbackGrant bool
}

// MessageStatus is a statuses[] item about a message we sent (field
// "messages", any type but "call"): permission requests, call buttons,
// templates.
type MessageStatus struct {
	MessageID             string         // id (wamid)
	Status                DeliveryStatus // status, matched case-insensitively
	StatusName            string         // status as sent
	Timestamp             time.Time      // timestamp
	RecipientID           string         // recipient_id; may be absent
	RecipientUserID       string         // recipient_user_id (BSUID)
	RecipientParentUserID string         // recipient_parent_user_id
	// Pricing is the per-message billing truth; nil when not sent.
	Pricing *Pricing
	// ConversationID and ConversationOrigin are conversation.id and
	// conversation.origin.type of the legacy conversation-based model (CBP);
	// ConversationExpiresAt is conversation.expiration_timestamp.
	ConversationID        string
	ConversationOrigin    string
	ConversationExpiresAt time.Time
	Errors                []MetaError // errors[] (failed statuses)
	BizOpaque             string      // biz_opaque_callback_data
}

// Pricing is a message status's pricing object, stored as sent.
type Pricing struct {
	Billable bool   // billable (boolean or "true"/"false")
	Model    string // pricing_model as sent: "PMP", legacy "CBP"
	Type     string // type as sent: "regular" | "free_customer_service" | "free_entry_point" | ...
	// Category as sent ("marketing", "utility", "authentication",
	// "service", "referral_conversion", ...), except that the hyphenated
	// "authentication-international" is normalised to
	// "authentication_international".
	Category string
}

// UserMessage is an inbound messages[] item from a user that is neither a
// permission reply nor a system message. It opens (or refreshes) the 24 h
// customer service window.
type UserMessage struct {
	MessageID        string    // id (wamid)
	From             string    // from; may be absent (username users)
	FromUserID       string    // from_user_id (BSUID)
	FromParentUserID string    // from_parent_user_id
	Timestamp        time.Time // timestamp
	// Type is the message type as sent, with interactive.type appended:
	// "text", "interactive:button_reply", "button", "image", "unsupported", ...
	Type string
	// Referral is true when the message has a referral object: the user came
	// from a Click-to-WhatsApp ad or a Page CTA (free entry point).
	Referral  bool
	ContextID string      // context.id: the message this one replies to; "" when absent
	Errors    []MetaError // errors[] (e.g. on type "unsupported")
}

// IdentityChange is a system message telling that a user changed phone
// number or BSUID: re-key permissions, billing and history on it.
type IdentityChange struct {
	Kind             IdentityChangeKind // system.type
	KindName         string             // system.type as sent
	MessageID        string             // id
	From             string             // from (the number the message came from)
	FromUserID       string             // from_user_id
	FromParentUserID string             // from_parent_user_id
	// NewWaID is the user's new number: system.wa_id or system.new_wa_id.
	NewWaID string
	// NewUserID and NewParentUserID are the user's BSUIDs after the change:
	// system.new_user_id / user_id (parent likewise), else from_user_id /
	// from_parent_user_id.
	NewUserID            string
	NewParentUserID      string
	PreviousUserID       string    // system.previous_user_id
	PreviousParentUserID string    // system.previous_parent_user_id
	Body                 string    // system.body (human-readable)
	Timestamp            time.Time // timestamp
}

// SettingsUpdate is an account_settings_update change (value.type
// PHONE_NUMBER_SETTINGS): the number's settings changed, possibly by us.
type SettingsUpdate struct {
	Type          string // value.type as sent, e.g. "PHONE_NUMBER_SETTINGS"
	PhoneNumberID string // phone_number_settings.phone_number_id, else metadata.phone_number_id
	// Calling is phone_number_settings.calling (the GET /settings shape);
	// nil when absent. The fields below are read from it.
	Calling                  json.RawMessage
	Status                   string          // calling.status: ENABLED | DISABLED
	CallIconVisibility       string          // calling.call_icon_visibility
	CallbackPermissionStatus string          // calling.callback_permission_status
	SIPStatus                string          // calling.sip.status (callgw needs DISABLED)
	SRTPKeyExchangeProtocol  string          // calling.srtp_key_exchange_protocol
	Raw                      json.RawMessage // the whole value
}

// AccountUpdate is an account_update change: violations, restrictions,
// pricing tier updates and other account events.
type AccountUpdate struct {
	// Event as sent: ACCOUNT_VIOLATION, ACCOUNT_RESTRICTION,
	// VOLUME_BASED_PRICING_TIER_UPDATE, ...
	Event         string
	PhoneNumber   string          // phone_number
	ViolationType string          // violation_info.violation_type (or value-level violation_type)
	Restrictions  []Restriction   // restriction_info[]
	Raw           json.RawMessage // the whole value
}

// Restriction is one restriction_info[] item.
type Restriction struct {
	Type       string    // restriction_type, e.g. RESTRICTED_BUSINESS_INITIATED_CALLING
	Expiration time.Time // expiration (epoch seconds or RFC 3339); zero when absent
}

// UnknownEvent is an update callgw does not act on (another field, a system
// message of another kind, value-level errors of a change with no call...).
// It is kept so the caller can log and acknowledge it.
type UnknownEvent struct {
	Field string // changes[].field
	// Type says what it is: "message:system:<type>", "errors", or "" for a
	// whole value of another field.
	Type   string
	Raw    json.RawMessage // the item's JSON as received (a copy; the whole value for an unknown field)
	Errors []MetaError     // value-level errors[], when Type is "errors"
}

// MetaError is one item of an errors[] array.
type MetaError struct {
	Code    int
	Title   string
	Message string
	Details string // error_data.details
	Href    string // href
}
