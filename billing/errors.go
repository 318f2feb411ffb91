package billing

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrInvalidRateCard: the rate card is malformed or inconsistent.
	ErrInvalidRateCard = errors.New("billing: invalid rate card")
	// ErrInvalidConfig: Config.Validate failed.
	ErrInvalidConfig = errors.New("billing: invalid config")
	// ErrInvalidRecord: the call record cannot be written (nothing was written).
	ErrInvalidRecord = errors.New("billing: invalid call record")
	// ErrInvalidMessage: the message cannot be metered (nothing was written).
	ErrInvalidMessage = errors.New("billing: invalid message")
	// ErrInvalidMonth: a month is not "YYYY-MM".
	ErrInvalidMonth = errors.New("billing: invalid month")
	// ErrInvalidCursor: a Calls cursor was not produced by Calls.
	ErrInvalidCursor = errors.New("billing: invalid cursor")
	// ErrNotFound: no ledger entry for that call id.
	ErrNotFound = errors.New("billing: entry not found")
	// ErrLedger: Redis failed; the write may be retried (Record is idempotent).
	ErrLedger = errors.New("billing: ledger storage error")
)
