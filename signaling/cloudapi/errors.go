package cloudapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Local errors.
var (
	// ErrBadConfig is returned by Config.Validate and New.
	ErrBadConfig = errors.New("cloudapi: bad config")
	// ErrBadInput is returned, before anything is sent, for an argument Meta
	// would refuse (empty call id, SDP that is not an SDP, bad number...).
	ErrBadInput = errors.New("cloudapi: bad input")
	// ErrUnexpectedResponse is returned when Meta answers 2xx with a body
	// that is not what the reference says (no success:true, no call id...).
	ErrUnexpectedResponse = errors.New("cloudapi: unexpected response")
	// ErrOutcomeUnknown wraps the error of a non-repeatable request (connect,
	// messages) that failed after it may have reached Meta (timeout, reset
	// connection, 5xx): the call may have been placed / the message sent.
	// It is never retried; the caller must reconcile from webhooks.
	ErrOutcomeUnknown = errors.New("cloudapi: outcome unknown, request may have reached Meta")
	// ErrRateLimitedLocally is matched (errors.Is) by a *LocalRateLimitError:
	// PermissionsReader did not ask Meta because the shared call_permissions
	// budget (5 requests per second per number) is spent or Meta asked us to
	// back off. Callers fall back to their local permission state.
	ErrRateLimitedLocally = errors.New("cloudapi: call_permissions budget spent, not asking Meta")
	// ErrBadAmount is matched by a *AmountError: an analytics cost that is
	// not a decimal number.
	ErrBadAmount = errors.New("cloudapi: bad amount")
)

// LocalRateLimitError is returned by PermissionsReader when it did not call
// Meta. errors.Is(err, ErrRateLimitedLocally) is true.
type LocalRateLimitError struct {
	RetryAfter time.Duration // when asking again may succeed; 0 unknown
	Backoff    bool          // Meta itself answered 613/429 recently
	Err        error         // the limiter's own failure (Redis down...), or nil
}

func (e *LocalRateLimitError) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("%v (budget unavailable: %v)", ErrRateLimitedLocally, e.Err)
	case e.Backoff:
		return fmt.Sprintf("%v (backing off after Meta's rate limit, retry in %v)", ErrRateLimitedLocally, e.RetryAfter)
	}
	return fmt.Sprintf("%v (budget spent, retry in %v)", ErrRateLimitedLocally, e.RetryAfter)
}

// Is matches ErrRateLimitedLocally.
func (e *LocalRateLimitError) Is(target error) bool { return target == ErrRateLimitedLocally }

// Unwrap is the limiter's failure, if any.
func (e *LocalRateLimitError) Unwrap() error { return e.Err }

// AmountError is a cost Meta reported that is not a decimal amount.
// errors.Is(err, ErrBadAmount) is true.
type AmountError struct {
	Value  string // as received
	Reason string
}

func (e *AmountError) Error() string {
	return fmt.Sprintf("%v %q: %s", ErrBadAmount, e.Value, e.Reason)
}

// Is matches ErrBadAmount.
func (e *AmountError) Is(target error) bool { return target == ErrBadAmount }

// Meta's error codes (Graph responses and terminate webhook errors[]), from
// the reference's table. They are untyped so they compare with Error.Code
// (int) and convert to Code.
const (
	CodeInvalidParameter      = 100    // invalid parameter; SDP problems in error_data.details
	CodePermissionsRateLimit  = 613    // call_permissions rate limit (HTTP 429)
	CodeVoiceCallUnsupported  = 131009 // interactive voice_call unsupported (sender country)
	CodeUndeliverable         = 131026 // message undeliverable (old client)
	CodeRecipientNotAllowed   = 131030 // recipient not in the allowed list (test numbers)
	CodeNoPaymentMethod       = 131044 // no valid payment method
	CodeReengagement          = 131047 // more than 24 h since the user last wrote: outside the window
	CodeSIPEnabled            = 131055 // Graph calling on a SIP-enabled number
	CodeBSUIDUnsupported      = 131062 // BSUID recipients not supported for this message (unconfirmed)
	CodeCallingDisabled       = 138000 // calling not enabled on the number (HTTP 401)
	CodeUserCannotReceive     = 138001 // receiver uncallable
	CodeConcurrentLimit       = 138002 // 1,000 concurrent calls (HTTP 429)
	CodeCallInProgress        = 138003 // a call with this user is already ongoing
	CodeConnectionError       = 138004 // connection error (HTTP 500)
	CodeRateLimited           = 138005 // number's call-initiation rate limit (HTTP 429)
	CodeNoPermission          = 138006 // no approved call permission (HTTP 401)
	CodeConnectTimeout        = 138007 // connect timeout (HTTP 500)
	CodeUndocumented138008    = 138008 // undocumented
	CodeRequestLimit          = 138009 // permission-request limit (1/24 h, 2/7 d)
	CodeUndocumented138010    = 138010 // undocumented
	CodeUndocumented138011    = 138011 // undocumented (a Meta FAQ about testing)
	CodeConnectedCallLimit    = 138012 // connected-BIC-per-user limit; details hold the next allowed time
	CodeCountryUnavailable    = 138013 // BIC unavailable for this BUSINESS number (country/eligibility)
	CodeLowQuality            = 138014 // calling paused for low quality
	CodeCannotEnable          = 138015 // calling cannot be enabled (messaging limit < 2,000)
	CodeUndocumented138016    = 138016 // undocumented
	CodePermanentExists       = 138017 // permanent permission already exists
	CodePrerequisitesMissing  = 138018 // no calls subscription / SIP
	CodeClientSetupFailed     = 138019 // terminate only
	CodeClientRelayFailed     = 138020 // terminate only
	CodeNoMedia               = 138021 // terminate only: no media from us
	CodeClientMediaFailed     = 138022 // terminate only
	CodeAcceptedNoMediaSignal = 138023 // terminate only: accepted, no media signals
)

// Code is a Meta error code with its reference classification.
type Code int

// RetryPolicy is the reference's "retry?" column.
type RetryPolicy int

// Retry policies.
const (
	RetryUnknown           RetryPolicy = iota // a code the reference does not list: no retry
	RetryNever                                // no: fix the cause (config, user, request)
	RetryBackoff                              // yes, at once with backoff (613, 138004, 138005)
	RetryLater                                // yes, a new attempt later (138002, 138019, 138020, 138022)
	RetryAfterCallEnds                        // 138003: after the ongoing call ends
	RetryNewAttempt                           // 138007: a new call attempt, never a repeat of the request
	RetryAtNextAllowed                        // 138012: at the time in error_data.details
	RetryAfterWindow                          // 138009: when the request-limit window passes
	RetryAfterRestriction                     // 138014: after restrictions.expiration
	RetryTreatAsSuccess                       // 138017: the goal is already reached
	RetryFixRequest                           // 100: fix the request
	RetryFixMedia                             // 138021: fix our media path
	RetryReconcile                            // 138023: reconcile billing, do not retry
	RetryRequestPermission                    // 138006: ask the user for permission first
)

var retryNames = [...]string{"unknown", "never", "backoff", "later", "after_call_ends", "new_attempt",
	"at_next_allowed", "after_window", "after_restriction", "treat_as_success", "fix_request", "fix_media",
	"reconcile", "request_permission"}

func (p RetryPolicy) String() string {
	if p >= 0 && int(p) < len(retryNames) {
		return retryNames[p]
	}
	return "RetryPolicy(" + strconv.Itoa(int(p)) + ")"
}

type codeInfo struct {
	name   string
	reason string
	retry  RetryPolicy
}

var codes = map[Code]codeInfo{
	CodeInvalidParameter:     {"invalid_parameter", "WhatsApp rejected a parameter of the request (often the SDP)", RetryFixRequest},
	CodePermissionsRateLimit: {"permissions_rate_limit", "too many call-permission lookups: WhatsApp allows 5 per second per number", RetryBackoff},
	CodeVoiceCallUnsupported: {"voice_call_unsupported", "call buttons are not supported for this business number's country", RetryNever},
	CodeUndeliverable:        {"undeliverable", "the message could not be delivered (the user's WhatsApp may be too old)", RetryNever},
	CodeRecipientNotAllowed:  {"recipient_not_allowed", "the recipient is not in the test number's allowed list", RetryNever},
	CodeNoPaymentMethod:      {"no_payment_method", "the WhatsApp account has no valid payment method", RetryNever},
	CodeReengagement:         {"outside_window", "more than 24 hours since the user last wrote: outside the customer service window, send a template", RetryNever},
	CodeSIPEnabled:           {"sip_enabled", "SIP is enabled on this number, so calls cannot be made through the Graph API", RetryNever},
	CodeBSUIDUnsupported:     {"bsuid_unsupported", "this message cannot be sent to a business-scoped user id; use the phone number", RetryNever},
	CodeCallingDisabled:      {"calling_disabled", "calling is not enabled on this business number", RetryNever},
	CodeUserCannotReceive:    {"user_cannot_receive", "this WhatsApp user cannot receive calls", RetryNever},
	CodeConcurrentLimit:      {"concurrent_limit", "the number already has the maximum of 1,000 concurrent calls", RetryLater},
	CodeCallInProgress:       {"call_in_progress", "a call with this user is already in progress", RetryAfterCallEnds},
	CodeConnectionError:      {"connection_error", "WhatsApp had a connection error; try again", RetryBackoff},
	CodeRateLimited:          {"rate_limited", "too many calls in a short time: call rate limit reached", RetryBackoff},
	CodeNoPermission:         {"no_permission", "the user has not given permission to be called", RetryRequestPermission},
	CodeConnectTimeout:       {"connect_timeout", "the call could not connect in time (media was not set up or accept came too late)", RetryNewAttempt},
	CodeUndocumented138008:   {"undocumented_138008", "WhatsApp returned undocumented calling error 138008", RetryNever},
	CodeRequestLimit:         {"request_limit", "the limit of call-permission requests to this user is reached (1 a day, 2 a week)", RetryAfterWindow},
	CodeUndocumented138010:   {"undocumented_138010", "WhatsApp returned undocumented calling error 138010", RetryNever},
	CodeUndocumented138011:   {"undocumented_138011", "WhatsApp returned undocumented calling error 138011", RetryNever},
	CodeConnectedCallLimit:   {"connected_call_limit", "the limit of connected calls to this user in 24 hours is reached", RetryAtNextAllowed},
	CodeCountryUnavailable:   {"business_number_ineligible", "business-initiated calling is not available for this business phone number (its country or account eligibility)", RetryNever},
	CodeLowQuality:           {"low_quality", "calling is paused on this number because of low call quality", RetryAfterRestriction},
	CodeCannotEnable:         {"cannot_enable", "calling cannot be enabled: the number's messaging limit is below 2,000", RetryNever},
	CodeUndocumented138016:   {"undocumented_138016", "WhatsApp returned undocumented calling error 138016", RetryNever},
	CodePermanentExists:      {"permanent_exists", "the user already gave permanent call permission", RetryTreatAsSuccess},
	CodePrerequisitesMissing: {"prerequisites_missing", "calling prerequisites are missing: subscribe the app to calls webhooks (or configure SIP)", RetryNever},
	CodeClientSetupFailed:    {"client_setup_failed", "the user's WhatsApp failed to set up the call", RetryLater},
	CodeClientRelayFailed:    {"client_relay_failed", "the user's WhatsApp could not reach the call relay", RetryLater},
	CodeNoMedia:              {"no_media", "the call ended because WhatsApp received no audio from us for too long", RetryFixMedia},
	CodeClientMediaFailed:    {"client_media_failed", "the user's WhatsApp could not transmit audio", RetryLater},
	CodeAcceptedNoMediaSignal: {"accepted_no_media", "the call was accepted but ended with no media signals; WhatsApp cannot tell whether it connected",
		RetryReconcile},
}

// String is the code's short name ("no_permission"), or the number.
func (c Code) String() string {
	if i, ok := codes[c]; ok {
		return i.name
	}
	return strconv.Itoa(int(c))
}

// Retry is the reference's retry classification of the code.
func (c Code) Retry() RetryPolicy {
	if i, ok := codes[c]; ok {
		return i.retry
	}
	return RetryUnknown
}

// Reason is a clear English reason (ReasonForCode).
func (c Code) Reason() string { return ReasonForCode(int(c)) }

// Known reports whether the reference lists the code.
func (c Code) Known() bool { _, ok := codes[c]; return ok }

// Undocumented reports the codes Meta uses without documenting them
// (138008, 138010, 138011, 138016): Reason shows Meta's message verbatim.
func (c Code) Undocumented() bool { return strings.HasPrefix(codes[c].name, "undocumented_") }

// TerminateOnly reports the codes that appear only in terminate webhooks.
func (c Code) TerminateOnly() bool {
	return c >= CodeClientSetupFailed && c <= CodeAcceptedNoMediaSignal
}

// Retryable reports whether the reference says "yes" (possibly later) for
// code: 613, 138002, 138004, 138005, 138019, 138020, 138022. Conditional
// answers (138003 after the call ends, 138007 new attempt, 138012 at the
// next allowed time...) are false here; see Code.Retry.
func Retryable(code int) bool {
	p := Code(code).Retry()
	return p == RetryBackoff || p == RetryLater
}

// ReasonForCode is a clear English reason for a Meta error code, for agents
// and API clients. Unknown codes get a generic text naming the code.
func ReasonForCode(code int) string {
	if i, ok := codes[Code(code)]; ok {
		return i.reason
	}
	return fmt.Sprintf("WhatsApp returned error %d", code)
}

// Meta error code sentinels, matched by errors.Is against any *Error with the
// same Code.
var (
	ErrInvalidParameter      error = &codeError{CodeInvalidParameter}
	ErrPermissionsRateLimit  error = &codeError{CodePermissionsRateLimit}
	ErrVoiceCallUnsupported  error = &codeError{CodeVoiceCallUnsupported}
	ErrUndeliverable         error = &codeError{CodeUndeliverable}
	ErrRecipientNotAllowed   error = &codeError{CodeRecipientNotAllowed}
	ErrNoPaymentMethod       error = &codeError{CodeNoPaymentMethod}
	ErrReengagement          error = &codeError{CodeReengagement}
	ErrSIPEnabled            error = &codeError{CodeSIPEnabled}
	ErrBSUIDUnsupported      error = &codeError{CodeBSUIDUnsupported}
	ErrCallingDisabled       error = &codeError{CodeCallingDisabled}
	ErrUserCannotReceive     error = &codeError{CodeUserCannotReceive}
	ErrConcurrentLimit       error = &codeError{CodeConcurrentLimit}
	ErrCallInProgress        error = &codeError{CodeCallInProgress}
	ErrConnectionError       error = &codeError{CodeConnectionError}
	ErrRateLimited           error = &codeError{CodeRateLimited}
	ErrNoPermission          error = &codeError{CodeNoPermission}
	ErrConnectTimeout        error = &codeError{CodeConnectTimeout}
	ErrUndocumented138008    error = &codeError{CodeUndocumented138008}
	ErrRequestLimit          error = &codeError{CodeRequestLimit}
	ErrUndocumented138010    error = &codeError{CodeUndocumented138010}
	ErrUndocumented138011    error = &codeError{CodeUndocumented138011}
	ErrConnectedCallLimit    error = &codeError{CodeConnectedCallLimit}
	ErrCountryUnavailable    error = &codeError{CodeCountryUnavailable}
	ErrLowQuality            error = &codeError{CodeLowQuality}
	ErrCannotEnable          error = &codeError{CodeCannotEnable}
	ErrUndocumented138016    error = &codeError{CodeUndocumented138016}
	ErrPermanentExists       error = &codeError{CodePermanentExists}
	ErrPrerequisitesMissing  error = &codeError{CodePrerequisitesMissing}
	ErrClientSetupFailed     error = &codeError{CodeClientSetupFailed}
	ErrClientRelayFailed     error = &codeError{CodeClientRelayFailed}
	ErrNoMedia               error = &codeError{CodeNoMedia}
	ErrClientMediaFailed     error = &codeError{CodeClientMediaFailed}
	ErrAcceptedNoMediaSignal error = &codeError{CodeAcceptedNoMediaSignal}
)

// ErrBusinessNumberIneligible is ErrCountryUnavailable under the name that
// says what 138013 is about: the business number, not the callee.
var ErrBusinessNumberIneligible = ErrCountryUnavailable

type codeError struct{ code int }

func (e *codeError) Error() string {
	return fmt.Sprintf("cloudapi: meta error %d: %s", e.code, ReasonForCode(e.code))
}

// Error is an error answer from the Graph API:
// {"error":{"message","type","code","error_subcode","error_data":{"details"},"fbtrace_id"}}.
// For a non-2xx answer without that body, Code is 0 and Message is the HTTP
// status text.
type Error struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string
	Message    string
	FBTraceID  string
	Details    string // error_data.details
	// RetryAfter is the answer's Retry-After header; 0 when absent.
	RetryAfter time.Duration
}

// retryAfterOf is the Retry-After of a Graph error in err's chain.
func retryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

func (e *Error) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "cloudapi: meta error %d", e.Code)
	if e.Subcode != 0 {
		fmt.Fprintf(&sb, "/%d", e.Subcode)
	}
	fmt.Fprintf(&sb, " (http %d", e.HTTPStatus)
	if e.Type != "" {
		sb.WriteString(", " + e.Type)
	}
	sb.WriteString(")")
	if e.Message != "" {
		sb.WriteString(": " + e.Message)
	}
	if e.Details != "" {
		sb.WriteString(": " + e.Details)
	}
	if e.FBTraceID != "" {
		sb.WriteString(" [fbtrace_id " + e.FBTraceID + "]")
	}
	return sb.String()
}

// Is matches the code sentinels (ErrNoPermission...) by Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*codeError)
	return ok && e.Code != 0 && t.code == e.Code
}

// Retry is the reference's retry classification of e.Code.
func (e *Error) Retry() RetryPolicy { return Code(e.Code).Retry() }

// Reason is a clear English reason for agents and API clients.
func (e *Error) Reason() string {
	var r string
	switch {
	case Code(e.Code).Known() && !(Code(e.Code).Undocumented() && e.Message != ""):
		r = ReasonForCode(e.Code)
	case e.Code == 0 && e.HTTPStatus == http.StatusTooManyRequests:
		r = "too many requests to WhatsApp; try again shortly"
	case e.Code == 0 && e.HTTPStatus >= 500:
		r = fmt.Sprintf("WhatsApp is temporarily unavailable (HTTP %d)", e.HTTPStatus)
	case e.Code == 0:
		r = fmt.Sprintf("WhatsApp refused the request (HTTP %d)", e.HTTPStatus)
	case e.Message != "":
		r = fmt.Sprintf("WhatsApp returned error %d: %s", e.Code, e.Message)
	default:
		r = ReasonForCode(e.Code)
	}
	if e.Details != "" {
		r += " (" + e.Details + ")"
	}
	return r
}

// NextAllowed reads the next allowed call time Meta puts in a 138012
// error's error_data.details, in a format Meta does not document. It looks
// for, in the details or any token of it: RFC 3339 (with or without
// fraction), unix seconds (or milliseconds), "YYYY-MM-DD HH:MM:SS" or
// "YYYY-MM-DDTHH:MM:SS" with or without a zone (no zone = UTC). It returns
// false when err is not a 138012 *Error or nothing parses: fall back to
// call_permissions' limit_expiration_time.
func NextAllowed(err error) (time.Time, bool) {
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeConnectedCallLimit || strings.TrimSpace(e.Details) == "" {
		return time.Time{}, false
	}
	return parseLooseTime(e.Details)
}

var looseLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05Z0700",
	"2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 -0700 MST",
	"2006-01-02 15:04:05 MST",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
}

// parseLooseTime tries the whole string, then every date-like window of it.
func parseLooseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 512 {
		s = s[:512]
	}
	if t, ok := parseTimeExact(s); ok {
		return t, true
	}
	// Free text ("Next call allowed at 2026-11-30 10:00:00 UTC."): try from
	// each position that starts a date or a number, longest candidate first.
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' || (i > 0 && s[i-1] >= '0' && s[i-1] <= '9') {
			continue
		}
		rest := strings.TrimRight(s[i:], ".,;)]\"' ")
		for end := min(len(rest), 40); end > 0; end-- { // no layout is longer
			if end < len(rest) && rest[end] != ' ' && rest[end] != '.' && rest[end] != ',' && rest[end] != ')' {
				continue
			}
			if t, ok := parseTimeExact(strings.TrimSpace(rest[:end])); ok {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

func parseTimeExact(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n >= 1e9 && n < 1e11: // seconds, 2001..5138
			return time.Unix(n, 0).UTC(), true
		case n >= 1e12 && n < 1e14: // milliseconds
			return time.UnixMilli(n).UTC(), true
		}
		return time.Time{}, false
	}
	for _, l := range looseLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
