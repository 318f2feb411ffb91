package agents

import (
	"fmt"
	"time"
)

// Hold, transfer and supervisor monitoring (docs/agent-protocol.md,
// "Hold, transfer, monitor"). Added to protocol version 1: a server that
// does not know them answers error bad_message.

// Client message types.
const (
	TypeHold             = "hold"              // {call_id}: the caller hears hold audio
	TypeUnhold           = "unhold"            // {call_id}: back to the caller
	TypeTransfer         = "transfer"          // {call_id, agent | team, mode: blind|warm}
	TypeTransferComplete = "transfer_complete" // {call_id}: warm, hand the caller to the target
	TypeTransferCancel   = "transfer_cancel"   // {call_id}: take the call back
	TypeMonitor          = "monitor"           // {call_id, mode: listen|whisper|takeover}: start, or change mode
	TypeMonitorAnswer    = "monitor_answer"    // {call_id, sdp}
	TypeMonitorICE       = "monitor_ice"       // {call_id, candidate}
	TypeMonitorStop      = "monitor_stop"      // {call_id}
)

// Server message types.
const (
	TypeMonitorOffer = "monitor_offer" // {call_id, sdp, mode}; candidates follow as monitor_ice
	TypeMonitorState = "monitor_state" // {call_id, mode, state}
)

// Error codes.
const (
	CodeForbidden = "forbidden" // the session's role may not do this (monitor: supervisors only)
	CodeNoTarget  = "no_target" // a transfer names nobody available
)

// TransferInfo describes a transfer under way in CallInfo.
type TransferInfo struct {
	Phase     string    `json:"phase"` // ringing | consulting | connecting
	Mode      string    `json:"mode"`  // blind | warm
	From      string    `json:"from"`
	To        string    `json:"to,omitempty"`   // the target who took it
	Team      string    `json:"team,omitempty"` // the team asked for
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// MonitorMsg carries a monitor leg's offer (monitor_offer) or its state
// (monitor_state).
type MonitorMsg struct {
	Type   string `json:"type"`
	Ref    string `json:"ref,omitempty"`
	CallID string `json:"call_id"`
	SDP    string `json:"sdp,omitempty"`
	Mode   string `json:"mode,omitempty"`
	State  string `json:"state,omitempty"` // connected | closed | failed
}

// MonitorICEMsg carries a gateway candidate of a monitor leg.
type MonitorICEMsg struct {
	Type      string `json:"type"`
	CallID    string `json:"call_id"`
	Candidate any    `json:"candidate"`
}

var monitorModes = map[string]bool{"listen": true, "whisper": true, "takeover": true}

// parseTransfer validates the messages of this file; false when m.Type is
// not one of them. Every one needs call_id (checked by the caller).
func parseTransfer(m *ClientMessage) (bool, error) {
	switch m.Type {
	case TypeHold, TypeUnhold, TypeTransferComplete, TypeTransferCancel, TypeMonitorStop:
	case TypeTransfer:
		switch {
		case (m.Agent == "") == (m.Team == ""):
			return true, fmt.Errorf("%w: transfer needs agent or team (one of them)", ErrBadMessage)
		case len(m.Agent) > 128 || len(m.Team) > 128:
			return true, fmt.Errorf("%w: agent or team longer than 128", ErrBadMessage)
		case m.Mode != "blind" && m.Mode != "warm":
			return true, fmt.Errorf("%w: transfer mode must be blind or warm", ErrBadMessage)
		}
	case TypeMonitor:
		if !monitorModes[m.Mode] {
			return true, fmt.Errorf("%w: monitor mode must be listen, whisper or takeover", ErrBadMessage)
		}
	case TypeMonitorAnswer:
		if m.SDP == "" || len(m.SDP) > 32<<10 {
			return true, fmt.Errorf("%w: monitor_answer needs sdp", ErrBadMessage)
		}
	case TypeMonitorICE:
		if m.Candidate == nil {
			return true, fmt.Errorf("%w: monitor_ice needs candidate", ErrBadMessage)
		}
	default:
		return false, nil
	}
	return true, nil
}
