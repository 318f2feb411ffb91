package signaling

import "errors"

var (
	// ErrDraining is returned for new calls while the instance drains.
	ErrDraining = errors.New("signaling: draining, not taking new calls")
	// ErrUnknownCall is returned for an event or command about a call this
	// instance does not know.
	ErrUnknownCall = errors.New("signaling: unknown call")
	// ErrStore wraps Redis failures: the caller should retry (webhooks answer
	// 503 so that Meta retries).
	ErrStore = errors.New("signaling: state store unavailable")
	// ErrBadEvent is returned for a webhook event that cannot be applied
	// (e.g. a connect without SDP).
	ErrBadEvent = errors.New("signaling: bad event")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("signaling: closed")
)
