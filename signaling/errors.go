package signaling

import (
	"errors"
	"fmt"
	"time"

	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/lifecycle"
)

// Errors of call control. The websocket edge (agenthandler.go) maps them to
// protocol codes, the REST edge (signaling/api) to HTTP statuses.
var (
	// ErrDraining is returned for new calls while the instance drains.
	ErrDraining = errors.New("signaling: draining, not taking new calls")
	// ErrUnknownCall is returned for an event or command about a call this
	// gateway does not know.
	ErrUnknownCall = errors.New("signaling: unknown call")
	// ErrStore wraps Redis failures: the caller should retry (webhooks answer
	// 503 so that Meta retries).
	ErrStore = errors.New("signaling: state store unavailable")
	// ErrBadEvent is returned for a webhook event that cannot be applied
	// (e.g. a connect without SDP).
	ErrBadEvent = errors.New("signaling: bad event")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("signaling: closed")
	// ErrInvalidNumber: not a phone number (E.164) nor a BSUID.
	ErrInvalidNumber = errors.New("signaling: not a valid phone number or user id")
	// ErrInvalidSDP: an agent's SDP could not be applied.
	ErrInvalidSDP = errors.New("signaling: the SDP could not be applied")
	// ErrBadCommand: an agent command that cannot be carried out as sent.
	ErrBadCommand = errors.New("signaling: bad command")
	// ErrMediaSetup: the media bridge could not be set up.
	ErrMediaSetup = errors.New("signaling: media setup failed")
	// ErrNotConfigured: the feature needs configuration this gateway lacks.
	ErrNotConfigured = errors.New("signaling: not configured")
	// ErrTemplateRequired: outside the user's customer service window a
	// permission request must be a template, and none is configured.
	ErrTemplateRequired = errors.New("signaling: outside the 24 h window a permission request needs a template (none configured)")
	// ErrOutsideWindow: the message may only be sent inside the user's 24 h
	// customer service window.
	ErrOutsideWindow = errors.New("signaling: only possible inside the user's 24 h customer service window")
	// ErrUnknownNumber: a business number this deployment does not serve.
	ErrUnknownNumber = errors.New("signaling: not a number this deployment serves")
	// ErrNoCallback: the earlier call named has no number to call back.
	ErrNoCallback = errors.New("signaling: that caller has no number or user id to call back")

	// Refusals of the call lifecycle (signaling/lifecycle).
	ErrCallTaken    = lifecycle.ErrCallTaken
	ErrNotYourCall  = lifecycle.ErrNotYourCall
	ErrOutOfTurn    = lifecycle.ErrOutOfTurn
	ErrNotAvailable = lifecycle.ErrNotAvailable
	ErrCallEnded    = lifecycle.ErrCallEnded
)

// MetaError is a refusal by Meta (a Graph error answer, or Meta out of
// reach when Code is 0).
type MetaError struct {
	Code int   // Meta's error code; 0 when Meta could not be reached
	Err  error // the Graph client's error
}

func (e *MetaError) Error() string { return fmt.Sprintf("signaling: meta: %v", e.Err) }
func (e *MetaError) Unwrap() error { return e.Err }

// Reason is a clear English reason for agents and API clients.
func (e *MetaError) Reason() string { return metaMessage(e.Err) }

// PermissionError is a business-initiated call or a permission request that
// WhatsApp's rules forbid now: which rule, and when it frees (zero when it
// does not free by itself).
type PermissionError struct {
	Reason   permissions.Reason
	FreesAt  time.Time
	Decision permissions.Decision
}

func (e *PermissionError) Error() string {
	return "signaling: not allowed: " + string(e.Reason)
}

// Text is a clear English explanation for agents and API clients.
func (e *PermissionError) Text() string { return reasonText(string(e.Reason)) }

func permissionError(d permissions.Decision) *PermissionError {
	frees := d.NextCallAt
	if frees.IsZero() {
		frees = d.NextRequestAt
	}
	return &PermissionError{Reason: d.Reason, FreesAt: frees, Decision: d}
}

func metaCode(err error) int {
	var e *cloudapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func metaReason(code int) string { return cloudapi.ReasonForCode(code) }

func metaMessage(err error) string {
	var e *cloudapi.Error
	if errors.As(err, &e) {
		return e.Reason()
	}
	return "WhatsApp could not be reached: try again"
}
