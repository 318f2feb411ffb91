package metasim

import "errors"

// Sentinel errors returned by the library API (Graph errors are answered over
// HTTP with Meta's error codes instead).
var (
	// ErrInvalidConfig is returned by Config.Validate and New.
	ErrInvalidConfig = errors.New("metasim: invalid config")
	// ErrClosed is returned once the simulator has been closed.
	ErrClosed = errors.New("metasim: closed")
	// ErrInvalidNumber is returned for a phone number that is not E.164.
	ErrInvalidNumber = errors.New("metasim: invalid phone number")
	// ErrInvalidAudio is returned when the audio is not Ogg Opus.
	ErrInvalidAudio = errors.New("metasim: invalid audio")
	// ErrInvalidDigits is returned by SendDTMF for characters outside 0-9*#A-D.
	ErrInvalidDigits = errors.New("metasim: invalid dtmf digits")
	// ErrCallEnded is returned when acting on, or waiting for a state of, an ended call.
	ErrCallEnded = errors.New("metasim: call ended")
	// ErrNotConnected is returned by SendDTMF before media is up.
	ErrNotConnected = errors.New("metasim: media not connected")
	// ErrCallingDisabled is returned by PlaceCall when calling is disabled in the settings.
	ErrCallingDisabled = errors.New("metasim: calling disabled on the business number")
	// ErrUnknownCall is returned by the control API for an unknown call id.
	ErrUnknownCall = errors.New("metasim: unknown call")
	// ErrInvalidCode is returned by EndWithError for a code that is not terminate-only.
	ErrInvalidCode = errors.New("metasim: invalid error code")
	// ErrUnknownNumber is returned for a business number the simulator does not serve.
	ErrUnknownNumber = errors.New("metasim: unknown business number")
	// ErrInvalidMessage is returned by SendUserMessage for an empty text.
	ErrInvalidMessage = errors.New("metasim: invalid message")
	// ErrPeer is returned when the user's WebRTC peer cannot be built.
	ErrPeer = errors.New("metasim: user peer")
)
