package recording

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Notice is one call_recording_available or call_transcription_available
// webhook event, with the business number it arrived for.
type Notice struct {
	// Number is the business phone number id (value.metadata.phone_number_id).
	Number   string
	CallID   string // wacid…
	Kind     Kind   // KindRecording or KindTranscript
	MediaID  string
	SHA256   string // base64, as Meta sends it
	MimeType string
	URL      string    // valid about 5 minutes from Timestamp
	At       time.Time // the event's timestamp: Meta keeps the media 7 days from here
}

// Validate checks a notice before anything is recorded.
func (n Notice) Validate() error {
	if err := validNumber(n.Number); err != nil {
		return err
	}
	if err := validCallID(n.CallID); err != nil {
		return err
	}
	if n.Kind != KindRecording && n.Kind != KindTranscript {
		return fmt.Errorf("%w: kind %v is not Meta's", ErrBadNotice, n.Kind)
	}
	if n.MediaID == "" || len(n.MediaID) > 128 {
		return fmt.Errorf("%w: media id %q", ErrBadNotice, n.MediaID)
	}
	for i := 0; i < len(n.MediaID); i++ {
		if c := n.MediaID[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return fmt.Errorf("%w: media id %q", ErrBadNotice, n.MediaID)
		}
	}
	if n.SHA256 != "" {
		if b, err := base64.StdEncoding.DecodeString(n.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("%w: sha256 %q is not base64 of 32 bytes", ErrBadNotice, n.SHA256)
		}
	}
	if n.URL != "" {
		if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("%w: url", ErrBadNotice)
		}
	}
	if n.At.IsZero() {
		return fmt.Errorf("%w: no timestamp", ErrBadNotice)
	}
	return nil
}

type mediaRef struct {
	ID       string `json:"id"`
	SHA256   string `json:"sha256"`
	MimeType string `json:"mime_type"`
	URL      string `json:"url"`
}

type callEvent struct {
	ID            string          `json:"id"`
	Event         string          `json:"event"`
	Timestamp     json.RawMessage `json:"timestamp"`
	CallRecording *struct {
		Type  string   `json:"type"`
		Audio mediaRef `json:"audio"`
	} `json:"call_recording"`
	CallTranscript *struct {
		Document mediaRef `json:"document"`
	} `json:"call_transcript"`
}

// ParseEvent reads one item of a calls webhook's value.calls[] for the
// business number phoneNumberID. Other events give ErrNotRecordingEvent.
// The timestamp may be a string or a number of Unix seconds.
func ParseEvent(phoneNumberID string, call []byte) (Notice, error) {
	var ev callEvent
	if err := json.Unmarshal(call, &ev); err != nil {
		return Notice{}, fmt.Errorf("%w: %v", ErrBadNotice, err)
	}
	n := Notice{Number: phoneNumberID, CallID: ev.ID}
	var ref *mediaRef
	switch ev.Event {
	case "call_recording_available":
		n.Kind = KindRecording
		if ev.CallRecording != nil {
			ref = &ev.CallRecording.Audio
		}
	case "call_transcription_available":
		n.Kind = KindTranscript
		if ev.CallTranscript != nil {
			ref = &ev.CallTranscript.Document
		}
	default:
		return Notice{}, fmt.Errorf("%w: %q", ErrNotRecordingEvent, ev.Event)
	}
	if ref == nil {
		return Notice{}, fmt.Errorf("%w: %s without media object", ErrBadNotice, ev.Event)
	}
	n.MediaID, n.SHA256, n.MimeType, n.URL = ref.ID, ref.SHA256, ref.MimeType, ref.URL
	ts, err := parseTimestamp(ev.Timestamp)
	if err != nil {
		return Notice{}, err
	}
	n.At = ts
	if err := n.Validate(); err != nil {
		return Notice{}, err
	}
	return n, nil
}

func parseTimestamp(raw json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		s = string(raw)
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, fmt.Errorf("%w: timestamp %s", ErrBadNotice, raw)
	}
	return time.Unix(sec, 0).UTC(), nil
}
