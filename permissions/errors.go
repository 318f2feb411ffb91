package permissions

import "errors"

var (
	// ErrUnavailable means Redis could not be reached or did not answer; the
	// decision that comes with it fails closed (Allowed=false,
	// Reason=redis_unavailable) unless Degraded is true.
	ErrUnavailable = errors.New("permissions: redis unavailable")
	// ErrInvalidPair means the business phone-number id or the user wa_id is
	// empty, too long or holds characters outside [0-9A-Za-z._-].
	ErrInvalidPair = errors.New("permissions: invalid pair")
	// ErrInvalidArgument means an id, call result, source, grant or time was
	// not acceptable; nothing was changed.
	ErrInvalidArgument = errors.New("permissions: invalid argument")
	// ErrUnknownMetaCode means MetaRefused was given a code it does not
	// handle; nothing was changed.
	ErrUnknownMetaCode = errors.New("permissions: unknown meta error code")
	// ErrInvalidConfig means a Config setting is out of range.
	ErrInvalidConfig = errors.New("permissions: invalid config")
	// ErrMetaFallback means the degraded fallback to Meta's call_permissions
	// endpoint failed as well.
	ErrMetaFallback = errors.New("permissions: meta fallback failed")
)
