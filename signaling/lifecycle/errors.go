package lifecycle

import "errors"

// Errors of agent commands that the lifecycle refuses. The signaling layer
// re-exports them and maps them to protocol and HTTP codes at its edges.
var (
	// ErrCallTaken: another agent owns the call.
	ErrCallTaken = errors.New("another agent took the call")
	// ErrNotYourCall: the command is about a call another agent owns.
	ErrNotYourCall = errors.New("the call belongs to another agent")
	// ErrOutOfTurn: the command does not fit the call's state.
	ErrOutOfTurn = errors.New("not possible in the call's current state")
	// ErrNotAvailable: an agent who is away tried to take a call.
	ErrNotAvailable = errors.New("set yourself available to take calls")
	// ErrCallEnded: the call is over.
	ErrCallEnded = errors.New("the call has ended")
)
