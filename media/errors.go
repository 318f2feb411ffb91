package media

import "errors"

// Sentinel errors returned (wrapped) by this package.
var (
	// ErrInvalidConfig is returned by Config.Validate and NewEngine for bad settings.
	ErrInvalidConfig = errors.New("media: invalid config")
	// ErrBadSDP is returned when an SDP offer or answer cannot be parsed or applied.
	ErrBadSDP = errors.New("media: bad sdp")
	// ErrNoOpus is returned when a remote description has no audio m-line with Opus.
	ErrNoOpus = errors.New("media: no opus in sdp")
	// ErrClosed is returned when the Engine or Bridge is closed.
	ErrClosed = errors.New("media: closed")
	// ErrLegExists is returned when the WhatsApp leg of a bridge is created twice.
	ErrLegExists = errors.New("media: whatsapp leg already exists")
	// ErrNoLeg is returned when an operation needs a leg that does not exist yet.
	ErrNoLeg = errors.New("media: leg does not exist")
	// ErrBadDTMF is returned by SendDTMF for digits outside 0-9 * # A-D.
	ErrBadDTMF = errors.New("media: bad dtmf digit")
	// ErrDTMFBusy is returned by SendDTMF when the DTMF queue is full.
	ErrDTMFBusy = errors.New("media: dtmf queue full")
	// ErrNotConnected is returned by SendDTMF before the WhatsApp leg is connected.
	ErrNotConnected = errors.New("media: whatsapp leg not connected")
	// ErrMediaNotStarted is returned by SendDTMF before StartWhatsAppMedia.
	ErrMediaNotStarted = errors.New("media: whatsapp media not started")
	// ErrFastPath is logged when a connected leg cannot move to the fast
	// packet path (it then stays on Pion's).
	ErrFastPath = errors.New("media: fast path")
	// ErrNoTelephoneEvent is returned by SendDTMF when telephone-event was not negotiated.
	ErrNoTelephoneEvent = errors.New("media: telephone-event not negotiated")
	// ErrBadCandidate is returned by AddAgentCandidate for a candidate Pion rejects.
	ErrBadCandidate = errors.New("media: bad ice candidate")
	// ErrBadSideMode is returned for a side mode outside listen, whisper, takeover, consult.
	ErrBadSideMode = errors.New("media: bad side mode")
	// ErrNoSide is returned when a side leg id does not exist.
	ErrNoSide = errors.New("media: no such side leg")
	// ErrSideExists is returned by OfferSide for an id already in use.
	ErrSideExists = errors.New("media: side leg exists")
	// ErrSideBusy is returned when a second side would talk (whisper, take over, consult).
	ErrSideBusy = errors.New("media: another side leg talks")
	// ErrSideNotConnected is returned by PromoteSide for a side leg not connected.
	ErrSideNotConnected = errors.New("media: side leg not connected")
)

// Prompts, playback and recording.
var (
	// ErrBadPrompt is returned (wrapped, saying why) by LoadPrompt and
	// LoadPromptFile for a file that is not a playable Ogg Opus stream.
	ErrBadPrompt = errors.New("media: bad prompt")
	// ErrUnknownPrompt is returned by BuiltinPrompt for a name it does not ship.
	ErrUnknownPrompt = errors.New("media: unknown built-in prompt")
	// ErrNoPrompt is returned by Play with no prompt (or a nil one).
	ErrNoPrompt = errors.New("media: no prompt to play")
	// ErrRecording is returned by StartRecording when a recording is already
	// on (or a sink is nil).
	ErrRecording = errors.New("media: recording")
)
