package agents

// TypeRecording answers recording_stop: the call's local recording state.
const TypeRecording = "recording"

// CodeRecordingRefused: nothing is recorded, or the number's policy does
// not let agents stop the recording.
const CodeRecordingRefused = "recording_refused"

// RecordingMsg is the server's "recording" message.
type RecordingMsg struct {
	Type   string `json:"type"`
	Ref    string `json:"ref,omitempty"`
	CallID string `json:"call_id"`
	State  string `json:"state"` // "stopped"
}
