package permissions

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Clock tells the time. One clock serves every Tracker sharing a Redis so
// that decisions agree; tests control it.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// MetaChecker is the degraded fallback used by CheckCall and State when Redis
// fails: Meta's GET /<phone-number-id>/call_permissions?user_wa_id=N for the
// Tracker's business number. The lead adapts cloudapi to it.
type MetaChecker interface {
	CallPermissions(ctx context.Context, userWAID string) (MetaPermission, error)
}

// MetaPermission is Meta's call_permissions answer in callgw terms.
type MetaPermission struct {
	Status          Status
	ExpiresAt       time.Time
	CanCall         bool // start_call can_perform_action
	CanRequest      bool // send_call_permission_request can_perform_action
	RequestsLeft24h int
	RequestsLeft7d  int
	NextRequestAt   time.Time
}

// Pair is one business phone number and one WhatsApp user.
type Pair struct {
	Business string // phone-number id
	User     string // user wa_id digits
}

const maxIDLen = 64

func validToken(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate reports whether both ids are non-empty, at most 64 bytes and made
// of [0-9A-Za-z._-] (so they cannot break the Redis hash tag).
func (p Pair) Validate() error {
	if !validToken(p.Business) {
		return fmt.Errorf("%w: business id %q", ErrInvalidPair, p.Business)
	}
	if !validToken(p.User) {
		return fmt.Errorf("%w: user id %q", ErrInvalidPair, maskID(p.User))
	}
	return nil
}

// String returns the pair with the user id masked, for logs.
func (p Pair) String() string { return p.Business + "/" + maskID(p.User) }

// maskID keeps the last 3 characters of a phone number or wa_id.
func maskID(s string) string {
	if len(s) <= 3 {
		return strings.Repeat("*", len(s))
	}
	return strings.Repeat("*", len(s)-3) + s[len(s)-3:]
}

// Status is a pair's permission status, as Meta names it.
type Status uint8

const (
	NoPermission Status = iota // no valid grant (never granted, expired or revoked)
	Temporary                  // granted until ExpiresAt
	Permanent                  // granted until the user revokes it
)

var statusNames = [...]string{"no_permission", "temporary", "permanent"}

// String returns "no_permission", "temporary" or "permanent".
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "no_permission"
}

// ParseStatus reads Meta's permission.status (case-insensitive); anything
// else is NoPermission.
func ParseStatus(s string) Status {
	for i, n := range statusNames {
		if strings.EqualFold(s, n) {
			return Status(i)
		}
	}
	return NoPermission
}

// MarshalText writes the name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name.
func (s *Status) UnmarshalText(b []byte) error { *s = ParseStatus(string(b)); return nil }

// Source says who granted or revoked a permission.
type Source uint8

const (
	SourceUnknown   Source = iota
	UserAction             // the user answered a request (response_source "user_action")
	Automatic              // WhatsApp did it (response_source "automatic")
	Callback               // the user called the business with callback permission on
	Meta                   // Meta said so (a refusal, or call_permissions)
	UnansweredCalls        // callgw's own count of unanswered calls reached UnansweredRevoke
)

var sourceNames = [...]string{"unknown", "user_action", "automatic", "callback", "meta", "unanswered_calls"}

// String returns the snake_case name (used as the metric label).
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// ParseSource reads a name written by String, including Meta's
// response_source values "user_action" and "automatic" (case-insensitive).
func ParseSource(s string) Source {
	for i, n := range sourceNames {
		if strings.EqualFold(s, n) {
			return Source(i)
		}
	}
	return SourceUnknown
}

// MarshalText writes the name.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name.
func (s *Source) UnmarshalText(b []byte) error { *s = ParseSource(string(b)); return nil }

// CallResult is how a business-initiated call ended, as RecordCall needs it.
type CallResult uint8

const (
	CallResultUnknown CallResult = iota
	CallConnected                // media connected: resets request counters and the streak, counts toward the 24 h limit
	CallUnanswered               // nobody answered: extends the unanswered streak
	CallDeclined                 // the user declined: extends the streak too (Meta's rule: "unanswered or rejected")
)

var callResultNames = [...]string{"unknown", "connected", "unanswered", "declined"}

// String returns "connected", "unanswered", "declined" or "unknown".
func (r CallResult) String() string {
	if int(r) < len(callResultNames) {
		return callResultNames[r]
	}
	return "unknown"
}

// Reason says why a decision was not allowed; empty when allowed.
type Reason string

const (
	ReasonNone               Reason = ""
	ReasonNoPermission       Reason = "no_permission"
	ReasonExpired            Reason = "expired"
	ReasonRevoked            Reason = "revoked"
	ReasonRequestLimit24h    Reason = "request_limit_24h"
	ReasonRequestLimit7d     Reason = "request_limit_7d"
	ReasonRequestLimitMeta   Reason = "request_limit_meta" // Meta answered 138009 and its window has not ended
	ReasonConnectedCallLimit Reason = "connected_call_limit"
	ReasonPermanentExists    Reason = "permanent_exists"
	ReasonRedisUnavailable   Reason = "redis_unavailable"
	ReasonMetaUnavailable    Reason = "meta_unavailable" // degraded, and Meta's call_permissions failed too
)

// Grant is a permission given by the user (call_permission_reply accept), by
// a callback, or found at Meta.
type Grant struct {
	Permanent bool
	// ExpiresAt is Meta's expiration_timestamp for a temporary grant; zero
	// means now + Config.TemporaryValidity. Ignored when Permanent.
	ExpiresAt time.Time
	Source    Source
	// ID makes the grant idempotent (the reply's wamid); empty applies it
	// without de-duplication.
	ID string
}

// Decision is the tracker's answer and its view of the pair after the
// operation. Times are zero when they do not apply.
type Decision struct {
	// Allowed is the answer to the operation asked: for RecordRequest, may
	// the request be sent; for CheckCall and State, may the business call
	// now; for the recording operations, whether the business may call now.
	Allowed bool   `json:"allowed"`
	Reason  Reason `json:"reason"`
	Status  Status `json:"status"`
	// ExpiresAt is the temporary grant's end (also reported, in the past,
	// with Reason "expired").
	ExpiresAt       time.Time `json:"expires_at,omitzero"`
	CanCall         bool      `json:"can_call"`
	CanRequest      bool      `json:"can_request"`
	RequestsLeft24h int       `json:"requests_left_24h"`
	RequestsLeft7d  int       `json:"requests_left_7d"`
	// NextRequestAt is when a request becomes possible again (zero when
	// CanRequest, or when only a permanent grant blocks requests).
	NextRequestAt time.Time `json:"next_request_at,omitzero"`
	CallsLeft24h  int       `json:"calls_left_24h"`
	// NextCallAt is when the connected-call limit frees a slot (zero unless
	// that limit blocks).
	NextCallAt       time.Time `json:"next_call_at,omitzero"`
	UnansweredStreak int       `json:"unanswered_streak"`
	// Reminder is true while the streak is at or past UnansweredReminder and
	// below UnansweredRevoke: WhatsApp has asked the user to reconsider.
	Reminder bool `json:"reminder"`
	// Degraded is true when Redis failed and the answer came from Meta's
	// call_permissions (or failed closed).
	Degraded bool `json:"degraded"`
}
