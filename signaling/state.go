package signaling

import "github.com/callgw/callgw/signaling/lifecycle"

// State is where a live call is in its life (see signaling/lifecycle).
type State = lifecycle.State

// The states, re-exported for readers of this package.
const (
	StateUnknown    = lifecycle.StateUnknown
	StateSetup      = lifecycle.StateSetup
	StateRinging    = lifecycle.StateRinging
	StateDialing    = lifecycle.StateDialing
	StateConnecting = lifecycle.StateConnecting
	StateConnected  = lifecycle.StateConnected
	StateEnded      = lifecycle.StateEnded
)

// ParseState reads a name written by State.String.
func ParseState(s string) State { return lifecycle.ParseState(s) }
