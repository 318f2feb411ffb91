package webhook

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/callgw/callgw/call"
)

// Batch is one webhook delivery, flattened.
type Batch struct {
	// Events in delivery order: entry by entry, change by change; inside one
	// change: calls[], then statuses[], then messages[], then value errors.
	Events []Event
}

// Event is one update. Exactly one of Call, Status, Permission, Unknown is set.
type Event struct {
	WABAID             string // entry[].id
	PhoneNumberID      string // value.metadata.phone_number_id
	DisplayPhoneNumber string // value.metadata.display_phone_number
	// ContactName is contacts[].profile.name of the contact matching the
	// user (by wa_id or user_id); the only contact's name if just one; else "".
	ContactName string

	Call       *CallEvent
	Status     *StatusEvent
	Permission *PermissionReply
	Unknown    *UnknownEvent
}

// CallEventType is the "event" of a calls[] item.
type CallEventType uint8

const (
	CallEventUnknown CallEventType = iota // an event name we do not know
	CallConnect                           // "connect"
	CallTerminate                         // "terminate"
)

var callEventNames = [...]string{"unknown", "connect", "terminate"}

func (t CallEventType) String() string {
	if int(t) < len(callEventNames) {
		return callEventNames[t]
	}
	return "unknown"
}

func parseCallEventType(s string) CallEventType {
	switch strings.ToLower(s) {
	case "connect":
		return CallConnect
	case "terminate":
		return CallTerminate
	}
	return CallEventUnknown
}

// CallStatus is the "status" of a statuses[] item of type "call".
type CallStatus uint8

const (
	StatusUnknown  CallStatus = iota // a status we do not know
	StatusRinging                    // "RINGING"
	StatusAccepted                   // "ACCEPTED"
	StatusRejected                   // "REJECTED"
)

var callStatusNames = [...]string{"unknown", "ringing", "accepted", "rejected"}

func (s CallStatus) String() string {
	if int(s) < len(callStatusNames) {
		return callStatusNames[s]
	}
	return "unknown"
}

func parseCallStatus(s string) CallStatus {
	for i, n := range callStatusNames[1:] {
		if strings.EqualFold(s, n) {
			return CallStatus(i + 1)
		}
	}
	return StatusUnknown
}

// CallEvent is a calls[] item (field "calls").
type CallEvent struct {
	CallID     string         // id ("wacid....")
	Event      CallEventType  // event
	EventName  string         // event as sent, for logging unknown events
	Direction  call.Direction // direction: USER_INITIATED / BUSINESS_INITIATED
	From, To   string         // digits as sent, no '+'; From may be empty (username users)
	FromUserID string         // from_user_id
	ToUserID   string         // to_user_id
	Timestamp  time.Time      // timestamp (epoch seconds, string or number); zero when absent

	SDPType string // session.sdp_type: "offer" | "answer"
	SDP     string // session.sdp

	Status           string    // terminate: "COMPLETED" | "FAILED" (upper-cased)
	StartTime        time.Time // terminate start_time; zero when absent
	EndTime          time.Time // terminate end_time; zero when absent
	Duration         int64     // terminate duration in seconds; -1 when absent
	DurationMismatch bool      // duration, start and end present and duration != end-start

	Errors []MetaError // errors[]

	BizOpaque       string // biz_opaque_callback_data
	DeeplinkPayload string // deeplink_payload
	CTAPayload      string // cta_payload
}

// UserNumber is the WhatsApp user's number (digits as sent): From for a
// user-initiated call, To for a business-initiated one.
func (c *CallEvent) UserNumber() string {
	if c.Direction == call.BusinessInitiated {
		return c.To
	}
	return c.From
}

// UserID is the WhatsApp user's id (for username users): FromUserID for a
// user-initiated call, ToUserID for a business-initiated one.
func (c *CallEvent) UserID() string {
	if c.Direction == call.BusinessInitiated {
		return c.ToUserID
	}
	return c.FromUserID
}

// StatusEvent is a statuses[] item of type "call": progress of a
// business-initiated call.
type StatusEvent struct {
	CallID      string      // id
	Status      CallStatus  // status, matched case-insensitively
	StatusName  string      // status as sent
	Timestamp   time.Time   // timestamp
	RecipientID string      // recipient_id (the user's wa_id)
	BizOpaque   string      // biz_opaque_callback_data
	Errors      []MetaError // errors[]
}

// PermissionReply is a messages[] item of type interactive /
// call_permission_reply: the user's answer to a call-permission request, a
// callback grant, or an automatic revocation.
type PermissionReply struct {
	From      string    // from (the user's wa_id)
	MessageID string    // id (wamid)
	Timestamp time.Time // timestamp
	Accepted  bool      // response == "accept" (case-insensitive); false for "reject"
	Permanent bool      // is_permanent
	ExpiresAt time.Time // expiration_timestamp (integer or string epoch seconds); zero when absent
	Source    string    // response_source: "user_action" | "automatic"
	ContextID string    // context.id: our request's wamid, or a wacid for a callback grant; "" when absent
}

// UnknownEvent is an update callgw does not act on (another field, a text
// message, a message delivery receipt, value-level errors...). It is kept so
// the caller can log and acknowledge it.
type UnknownEvent struct {
	Field  string          // changes[].field
	Type   string          // what it is: the message/status type, "errors", or "" for a whole value
	Raw    json.RawMessage // the item's JSON as received (the whole value for an unknown field)
	Errors []MetaError     // value-level errors[], when Type is "errors"
}

// MetaError is one item of an errors[] array.
type MetaError struct {
	Code    int
	Title   string
	Message string
	Details string // error_data.details
}
