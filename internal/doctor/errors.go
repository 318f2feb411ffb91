package doctor

import "errors"

var (
	// ErrNoResponse means a STUN or TURN server did not answer in time.
	ErrNoResponse = errors.New("doctor: no response")
	// ErrFailed is returned by Report.Err when a check failed.
	ErrFailed = errors.New("doctor: checks failed")
)
