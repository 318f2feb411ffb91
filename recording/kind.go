package recording

import (
	"fmt"
	"strings"
	"time"

	"github.com/callgw/callgw/storage"
)

// Kind is what an object of a call holds.
type Kind uint8

const (
	KindUnknown Kind = iota
	// KindRecording is Meta's mixed call recording (audio/ogg; codecs=opus).
	KindRecording
	// KindTranscript is Meta's transcript document (application/json).
	KindTranscript
	// KindUserAudio is our own recording of what the WhatsApp user sent.
	KindUserAudio
	// KindBusinessAudio is our own recording of what the agent sent.
	KindBusinessAudio
)

var kindNames = [...]string{"unknown", "recording", "transcript", "user_audio", "business_audio"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Ext is the object name extension.
func (k Kind) Ext() string {
	if k == KindTranscript {
		return "json"
	}
	return "ogg"
}

// ContentType is the MIME type stored with objects of this kind.
func (k Kind) ContentType() string {
	if k == KindTranscript {
		return "application/json"
	}
	return "audio/ogg; codecs=opus"
}

// ParseKind is the inverse of String.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if i > 0 && n == s {
			return Kind(i), nil
		}
	}
	return KindUnknown, fmt.Errorf("%w: kind %q", ErrBadNotice, s)
}

func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	*k = v
	return err
}

// Status is where an index entry stands.
type Status uint8

const (
	StatusUnknown Status = iota
	// StatusPending: not stored yet; the download is (re)tried.
	StatusPending
	// StatusStored: the object is in the store.
	StatusStored
	// StatusFailed: given up (Meta's retention ended or the media is gone).
	StatusFailed
)

var statusNames = [...]string{"unknown", "pending", "stored", "failed"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("recording: status %q", b)
}

// ObjectKey names a call's object: <number>/<yyyy>/<mm>/<dd>/<call id>/<kind>.<ext>,
// the date in UTC. Slashes in the call id (base64) become underscores; any
// other character outside storage keys' set is refused.
func ObjectKey(number string, day time.Time, callID string, kind Kind) (string, error) {
	if err := validNumber(number); err != nil {
		return "", err
	}
	if kind == KindUnknown || int(kind) >= len(kindNames) {
		return "", fmt.Errorf("%w: kind %v", ErrBadNotice, kind)
	}
	if callID == "" {
		return "", fmt.Errorf("%w: empty call id", ErrBadNotice)
	}
	d := day.UTC()
	key := fmt.Sprintf("%s/%04d/%02d/%02d/%s/%s.%s", number, d.Year(), int(d.Month()), d.Day(),
		strings.ReplaceAll(callID, "/", "_"), kind, kind.Ext())
	if err := storage.ValidKey(key); err != nil {
		return "", fmt.Errorf("%w: call id %q: %v", ErrBadNotice, callID, err)
	}
	return key, nil
}

func validNumber(n string) error {
	if n == "" || len(n) > 32 {
		return fmt.Errorf("%w: number %q", ErrBadNotice, n)
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return fmt.Errorf("%w: number %q", ErrBadNotice, n)
		}
	}
	return nil
}

func validCallID(id string) error {
	if id == "" || len(id) > 512 || strings.ContainsAny(id, "\n\r\x00|") {
		return fmt.Errorf("%w: call id %q", ErrBadNotice, id)
	}
	return nil
}
