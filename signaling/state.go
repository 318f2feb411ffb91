package signaling

// State is where a live call is in its life.
type State uint8

const (
	StateUnknown    State = iota
	StateSetup            // user-initiated: building media, sending pre_accept
	StateRinging          // offered to agents
	StateDialing          // business-initiated: connect sent, waiting for the user
	StateConnecting       // an agent took it; agent leg being set up
	StateConnected        // both legs up, audio bridged
	StateEnded            // over; waiting for Meta's terminate to finish the record
)

var stateNames = [...]string{"unknown", "setup", "ringing", "dialing", "connecting", "connected", "ended"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// ParseState reads a name written by String.
func ParseState(s string) State {
	for i, n := range stateNames {
		if n == s {
			return State(i)
		}
	}
	return StateUnknown
}

// Live reports whether the call still has media or signaling to do.
func (s State) Live() bool { return s != StateUnknown && s != StateEnded }

// agentOwned reports whether an agent owns the call in this state.
func (s State) agentOwned() bool {
	return s == StateDialing || s == StateConnecting || s == StateConnected
}
