package cloudapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
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
)

// Meta error codes (Graph errors and terminate webhook errors[]). Each is
// matched by errors.Is against any *Error with the same Code.
var (
	ErrCallingDisabled    error = &codeError{CodeCallingDisabled}
	ErrUserCannotReceive  error = &codeError{CodeUserCannotReceive}
	ErrConcurrentLimit    error = &codeError{CodeConcurrentLimit}
	ErrCallInProgress     error = &codeError{CodeCallInProgress}
	ErrRateLimited        error = &codeError{CodeRateLimited}
	ErrNoPermission       error = &codeError{CodeNoPermission}
	ErrConnectTimeout     error = &codeError{CodeConnectTimeout}
	ErrRequestLimit       error = &codeError{CodeRequestLimit}
	ErrConnectedCallLimit error = &codeError{CodeConnectedCallLimit}
	ErrCountryUnavailable error = &codeError{CodeCountryUnavailable}
	ErrLowQuality         error = &codeError{CodeLowQuality}
	ErrPermanentExists    error = &codeError{CodePermanentExists}
	ErrNoMedia            error = &codeError{CodeNoMedia}
	ErrInvalidParameter   error = &codeError{CodeInvalidParameter}
)

// Meta's calling error codes.
const (
	CodeInvalidParameter   = 100
	CodeCallingDisabled    = 138000
	CodeUserCannotReceive  = 138001
	CodeConcurrentLimit    = 138002
	CodeCallInProgress     = 138003
	CodeRateLimited        = 138005
	CodeNoPermission       = 138006
	CodeConnectTimeout     = 138007
	CodeRequestLimit       = 138009
	CodeConnectedCallLimit = 138012
	CodeCountryUnavailable = 138013
	CodeLowQuality         = 138014
	CodePermanentExists    = 138017
	CodeNoMedia            = 138021
)

var reasons = map[int]string{
	CodeInvalidParameter:   "WhatsApp rejected a parameter of the request (often the SDP)",
	CodeCallingDisabled:    "calling is not enabled on this business number",
	CodeUserCannotReceive:  "this WhatsApp user cannot receive calls",
	CodeConcurrentLimit:    "the number already has the maximum of 1,000 concurrent calls",
	CodeCallInProgress:     "a call with this user is already in progress",
	CodeRateLimited:        "too many calls in a short time: call rate limit reached",
	CodeNoPermission:       "the user has not given permission to be called",
	CodeConnectTimeout:     "the call could not connect in time (media was not set up)",
	CodeRequestLimit:       "the limit of call-permission requests to this user is reached",
	CodeConnectedCallLimit: "the limit of connected calls to this user is reached",
	CodeCountryUnavailable: "business-initiated calling is not available for this country",
	CodeLowQuality:         "calling is paused on this number because of low call quality",
	CodePermanentExists:    "the user already gave permanent call permission",
	CodeNoMedia:            "the call ended because WhatsApp received no audio for too long",
}

// ReasonForCode is a clear English reason for a Meta error code, for agents
// and API clients. Unknown codes get a generic text naming the code.
func ReasonForCode(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return fmt.Sprintf("WhatsApp returned error %d", code)
}

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

// Reason is a clear English reason for agents and API clients.
func (e *Error) Reason() string {
	var r string
	switch {
	case reasons[e.Code] != "":
		r = reasons[e.Code]
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
