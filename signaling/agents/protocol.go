package agents

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/pion/webrtc/v4"
)

// Version is the protocol version this package speaks.
const Version = 1

// MaxMessageBytes bounds one websocket frame.
const MaxMessageBytes = 64 << 10

// Client message types.
const (
	TypeHello             = "hello"
	TypePresence          = "presence"
	TypeAccept            = "accept"
	TypeReject            = "reject"
	TypeAnswer            = "answer"
	TypeICE               = "ice"
	TypeResume            = "resume"
	TypeHangup            = "hangup"
	TypeDTMF              = "dtmf"
	TypeDial              = "dial"
	TypePermissionQuery   = "permission_query"
	TypePermissionRequest = "permission_request"
	TypePing              = "ping"
	TypeRecordingStop     = "recording_stop" // stop the call's local recording (recording.go)
)

// Server message types.
const (
	TypeWelcome     = "welcome"
	TypeCallOffered = "call_offered"
	TypeCallTaken   = "call_taken"
	TypeCall        = "call"
	TypeCallEnded   = "call_ended"
	TypeOffer       = "offer"
	TypePermission  = "permission"
	TypeError       = "error"
	TypePong        = "pong"
	TypeICEServers  = "ice_servers"
)

// Presence is an agent session's availability.
type Presence string

const (
	Away      Presence = "away"
	Available Presence = "available"
)

// ClientMessage is any message a softphone sends; which fields matter depends
// on Type (docs/agent-protocol.md).
type ClientMessage struct {
	Type      string                   `json:"type"`
	Ref       string                   `json:"ref,omitempty"`
	V         int                      `json:"v,omitempty"`
	Token     string                   `json:"token,omitempty"`
	Status    Presence                 `json:"status,omitempty"`
	CallID    string                   `json:"call_id,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Digits    string                   `json:"digits,omitempty"`
	To        string                   `json:"to,omitempty"`
	Text      string                   `json:"text,omitempty"`
	// From (dial) is the business number to call from: the phone_number_id
	// of one of the agent's numbers ("" = the deployment's main number).
	From string `json:"from,omitempty"`
	// transfer and monitor (transfer.go)
	Agent string `json:"agent,omitempty"`
	Team  string `json:"team,omitempty"`
	Mode  string `json:"mode,omitempty"`
}

var (
	dtmfRe   = regexp.MustCompile(`^[0-9*#A-Da-d]{1,32}$`)
	callIDRe = regexp.MustCompile(`^[A-Za-z0-9._:=+/\-]{1,256}$`)
)

// ParseClientMessage decodes and validates one frame. It never panics.
func ParseClientMessage(b []byte) (*ClientMessage, error) {
	var m ClientMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrBadMessage, err)
	}
	if len(m.Ref) > 64 {
		return nil, fmt.Errorf("%w: ref longer than 64", ErrBadMessage)
	}
	needCall := false
	switch m.Type {
	case TypeHello:
		if m.Token == "" {
			return &m, fmt.Errorf("%w: hello needs token", ErrBadMessage)
		}
	case TypePresence:
		if m.Status != Away && m.Status != Available {
			return &m, fmt.Errorf("%w: presence status must be available or away", ErrBadMessage)
		}
	case TypeAccept, TypeReject, TypeResume, TypeHangup, TypeRecordingStop:
		needCall = true
	case TypeAnswer:
		needCall = true
		if m.SDP == "" || len(m.SDP) > 32<<10 {
			return &m, fmt.Errorf("%w: answer needs sdp", ErrBadMessage)
		}
	case TypeICE:
		needCall = true
		if m.Candidate == nil {
			return &m, fmt.Errorf("%w: ice needs candidate", ErrBadMessage)
		}
	case TypeDTMF:
		needCall = true
		if !dtmfRe.MatchString(m.Digits) {
			return &m, fmt.Errorf("%w: digits must be 1..32 of 0-9*#A-D", ErrBadMessage)
		}
	case TypeDial, TypePermissionQuery, TypePermissionRequest:
		// "to" is a number; "call_id" names an earlier call whose number the
		// server looks up (a call back when numbers are masked).
		switch {
		case m.To == "" && m.CallID == "":
			return &m, fmt.Errorf("%w: %s needs to or call_id", ErrBadMessage, m.Type)
		case len(m.To) > 32:
			return &m, fmt.Errorf("%w: to longer than 32", ErrBadMessage)
		case len(m.From) > 32:
			return &m, fmt.Errorf("%w: from longer than 32", ErrBadMessage)
		case m.To == "" && !callIDRe.MatchString(m.CallID):
			return &m, fmt.Errorf("%w: bad call_id", ErrBadMessage)
		}
		if len(m.Text) > 1024 {
			return &m, fmt.Errorf("%w: text longer than 1024", ErrBadMessage)
		}
	case TypePing:
	case "":
		return &m, fmt.Errorf("%w: missing type", ErrBadMessage)
	default:
		ok, err := parseTransfer(&m) // hold, transfer, monitor: transfer.go
		if err != nil {
			return &m, err
		}
		if !ok {
			return &m, fmt.Errorf("%w: unknown type %q", ErrBadMessage, m.Type)
		}
		needCall = true
	}
	if needCall && !callIDRe.MatchString(m.CallID) {
		return &m, fmt.Errorf("%w: %s needs call_id", ErrBadMessage, m.Type)
	}
	return &m, nil
}

// CallInfo describes a call to softphones.
type CallInfo struct {
	ID            string    `json:"id"`
	Direction     string    `json:"direction"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Name          string    `json:"name,omitempty"`
	State         string    `json:"state"`
	Agent         string    `json:"agent,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	RingExpiresAt time.Time `json:"ring_expires_at,omitzero"`
	// OfferExpiresAt is when the offer to the agent(s) rung now ends, when
	// sooner than the call's ring: round_robin / longest_idle ring one agent
	// for the team's ring_seconds, and a waiting caller is offered for as
	// long; zero when the offer lasts as long as the ring.
	OfferExpiresAt time.Time `json:"offer_expires_at,omitzero"`
	ConnectedAt    time.Time `json:"connected_at,omitzero"`
	Payload        string    `json:"payload,omitempty"`
	// Warning (a dial's answer) says something the agent should know while
	// the call proceeds, e.g. that it is outside the number's call hours.
	Warning string `json:"warning,omitempty"`
	// Brand and PhoneNumberID are the business number called (user-initiated)
	// or calling (business-initiated); Team is the team it rings or waits for.
	Brand         string   `json:"brand,omitempty"`
	PhoneNumberID string   `json:"phone_number_id,omitempty"`
	Team          string   `json:"team,omitempty"`
	OfferedTo     []string `json:"offered_to,omitempty"` // agents a routed call is offered to now (empty: every available agent)
	// Media is the agent leg while an agent owns the call: "connecting"
	// (offered, or reconnecting) or "up" (audio flows).
	Media   string   `json:"media,omitempty"`
	Quality *Quality `json:"quality,omitempty"`
	// Price lets the page show a business-initiated call's running cost,
	// pulse by pulse, from connected_at (set once the user picked up).
	Price *Price `json:"price,omitempty"`
	// OnHold: the caller hears hold audio; Transfer: a transfer under way.
	OnHold   bool          `json:"on_hold,omitempty"`
	Transfer *TransferInfo `json:"transfer,omitempty"`
	// Recording is the call's local recording (callgw's own, not Meta's):
	// "" none, "consent" (the consent prompt plays, or callgw waits for the
	// caller's key), "on", "stopped" (during the call), "refused" (explicit
	// consent not given). RecordingMayStop: the number's policy lets the
	// agent stop it (recording_stop).
	Recording        string `json:"recording,omitempty"`
	RecordingMayStop bool   `json:"recording_may_stop,omitempty"`
}

// Price is how a connected business-initiated call is billed: whole
// pulses of IncrementS seconds (a begun pulse counts), the whole call at
// the tier reached at its end, in integer micro-units of Currency.
type Price struct {
	IncrementS  int64       `json:"increment_s"`
	UsedSeconds int64       `json:"used_seconds"` // the market's volume this month before the call
	Tiers       []PriceTier `json:"tiers"`
	Market      string      `json:"market"`
}

// PriceTier is one volume tier: from FromMinutes of monthly volume, RateMicros per minute.
type PriceTier struct {
	FromMinutes int64 `json:"from_minutes"`
	RateMicros  int64 `json:"rate_micros"`
}

// Quality is a call's media quality, for supervisors.
type Quality struct {
	RTTMillis    float64 `json:"rtt_ms"`
	LossPercent  float64 `json:"loss_pct"`
	JitterMillis float64 `json:"jitter_ms"`
}

// ICEServer is handed to browsers (RTCIceServer).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEServersMsg replaces the session's ICE servers (fresh TURN credentials)
// for peer connections created from now on.
type ICEServersMsg struct {
	Type       string      `json:"type"`
	ICEServers []ICEServer `json:"ice_servers"`
}

// Welcome opens a session.
type Welcome struct {
	Type       string      `json:"type"`
	V          int         `json:"v"`
	Agent      string      `json:"agent"`
	Role       Role        `json:"role"`
	Session    string      `json:"session"`
	Presence   Presence    `json:"presence"`
	ICEServers []ICEServer `json:"ice_servers"`
	Calls      []CallInfo  `json:"calls"`
	Settings   Settings    `json:"settings"`
}

// Settings are the server settings a softphone needs.
type Settings struct {
	MaskNumbers  bool `json:"mask_numbers"`
	RingTimeoutS int  `json:"ring_timeout_s"`
	Demo         bool `json:"demo"`
}

// PresenceMsg echoes a session's presence.
type PresenceMsg struct {
	Type   string   `json:"type"`
	Ref    string   `json:"ref,omitempty"`
	Status Presence `json:"status"`
}

// CallMsg carries a CallInfo (types call_offered and call).
type CallMsg struct {
	Type string   `json:"type"`
	Ref  string   `json:"ref,omitempty"`
	Call CallInfo `json:"call"`
}

// CallTaken tells ringing agents to stop ringing.
type CallTaken struct {
	Type   string `json:"type"`
	CallID string `json:"call_id"`
	Agent  string `json:"agent,omitempty"`
}

// CallEnded tells that a call is over.
type CallEnded struct {
	Type      string `json:"type"`
	CallID    string `json:"call_id"`
	Reason    string `json:"reason"`
	Outcome   string `json:"outcome"`
	DurationS int64  `json:"duration_s"`
	ErrorCode int    `json:"error_code,omitempty"`
	Message   string `json:"message,omitempty"`
}

// SDPMsg carries the gateway's offer.
type SDPMsg struct {
	Type   string `json:"type"`
	Ref    string `json:"ref,omitempty"` // the ref of the accept, resume or dial that led to this offer
	CallID string `json:"call_id"`
	SDP    string `json:"sdp"`
}

// ICEMsg carries a gateway ICE candidate.
type ICEMsg struct {
	Type      string                  `json:"type"`
	CallID    string                  `json:"call_id"`
	Candidate webrtc.ICECandidateInit `json:"candidate"`
}

// PermissionMsg carries a number's permission state.
type PermissionMsg struct {
	Type       string `json:"type"`
	Ref        string `json:"ref,omitempty"`
	To         string `json:"to"`
	CallID     string `json:"call_id,omitempty"` // set when the request named a call instead of a number
	Permission any    `json:"permission"`
}

// DTMFMsg tells the agent the WhatsApp user pressed a key.
type DTMFMsg struct {
	Type   string `json:"type"`
	CallID string `json:"call_id"`
	Digit  string `json:"digit"`
}

// ErrorMsg reports a failed request.
type ErrorMsg struct {
	Type     string `json:"type"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	Ref      string `json:"ref,omitempty"`
	CallID   string `json:"call_id,omitempty"`
	MetaCode int    `json:"meta_code,omitempty"`
}
