package agents

import "errors"

var (
	// ErrBadToken is returned for a token that is missing, malformed, badly
	// signed or expired.
	ErrBadToken = errors.New("agents: bad or expired token")
	// ErrBadMessage is returned for a client message that is not valid JSON,
	// has an unknown type or misses a required field.
	ErrBadMessage = errors.New("agents: bad message")
	// ErrClosed is returned by a Session or Hub that has been closed.
	ErrClosed = errors.New("agents: closed")
)

// Error codes sent in "error" messages (docs/agent-protocol.md).
const (
	CodeBadMessage         = "bad_message"
	CodeUnauthenticated    = "unauthenticated"
	CodeUnsupportedVersion = "unsupported_version"
	CodeOutOfTurn          = "out_of_turn"
	CodeUnknownCall        = "unknown_call"
	CodeCallTaken          = "call_taken"
	CodeNotYourCall        = "not_your_call"
	CodeNotAvailable       = "not_available"
	CodeInvalidSDP         = "invalid_sdp"
	CodeInvalidNumber      = "invalid_number"
	CodeMetaError          = "meta_error"
	CodeUnavailable        = "unavailable"
	CodeInternal           = "internal"
)

// CodedError is an error that carries a protocol error code; handlers return
// it so the hub can answer with the right "error" message.
type CodedError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	MetaCode int    `json:"meta_code,omitempty"`
	Err      error  `json:"-"`
}

func (e *CodedError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *CodedError) Unwrap() error { return e.Err }

// Errorf builds a CodedError.
func Errorf(code, msg string, err error) *CodedError {
	return &CodedError{Code: code, Message: msg, Err: err}
}
