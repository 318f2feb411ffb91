package media

import "github.com/pion/webrtc/v4"

// LegState is the connection state of one leg (the PeerConnection state).
type LegState uint8

// Leg states; LegUnknown is the zero value.
const (
	LegUnknown LegState = iota
	LegNew
	LegConnecting
	LegConnected
	LegDisconnected
	LegFailed
	LegClosed
)

// String returns the lowercase state name.
func (s LegState) String() string {
	switch s {
	case LegNew:
		return "new"
	case LegConnecting:
		return "connecting"
	case LegConnected:
		return "connected"
	case LegDisconnected:
		return "disconnected"
	case LegFailed:
		return "failed"
	case LegClosed:
		return "closed"
	default:
		return "unknown"
	}
}

func legStateFrom(s webrtc.PeerConnectionState) LegState {
	switch s {
	case webrtc.PeerConnectionStateNew:
		return LegNew
	case webrtc.PeerConnectionStateConnecting:
		return LegConnecting
	case webrtc.PeerConnectionStateConnected:
		return LegConnected
	case webrtc.PeerConnectionStateDisconnected:
		return LegDisconnected
	case webrtc.PeerConnectionStateFailed:
		return LegFailed
	case webrtc.PeerConnectionStateClosed:
		return LegClosed
	default:
		return LegUnknown
	}
}

// legKind names a leg in metrics and logs.
type legKind uint8

const (
	legWhatsApp legKind = iota
	legAgent
)

// String returns the leg name used as a metric label.
func (k legKind) String() string {
	if k == legAgent {
		return "agent"
	}
	return "whatsapp"
}
