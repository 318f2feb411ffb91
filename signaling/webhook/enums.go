package webhook

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// The enums below marshal to JSON as their String() name and unmarshal from
// either that name or the number older builds wrote, so events kept in Redis
// or forwarded between nodes survive an upgrade.

// CallEventType is the "event" of a calls[] item.
type CallEventType uint8

const (
	CallEventUnknown           CallEventType = iota // an event name we do not know (call_created, ...): acknowledge, ignore
	CallConnect                                     // "connect"
	CallTerminate                                   // "terminate"
	CallRecordingAvailable                          // "call_recording_available"
	CallTranscriptionAvailable                      // "call_transcription_available"
)

var callEventNames = []string{"unknown", "connect", "terminate", "recording_available", "transcription_available"}

func (t CallEventType) String() string { return enumName(callEventNames, uint8(t)) }

// MarshalText writes String().
func (t CallEventType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalJSON reads a name (String() or Meta's) or a number.
func (t *CallEventType) UnmarshalJSON(b []byte) error {
	v, err := enumFromJSON(b, callEventNames, parseCallEventTypeU8)
	*t = CallEventType(v)
	return err
}

func parseCallEventTypeU8(s string) uint8 { return uint8(parseCallEventType(s)) }

func parseCallEventType(s string) CallEventType {
	switch strings.ToLower(s) {
	case "connect":
		return CallConnect
	case "terminate":
		return CallTerminate
	case "call_recording_available", "recording_available":
		return CallRecordingAvailable
	case "call_transcription_available", "transcription_available":
		return CallTranscriptionAvailable
	}
	return CallEventUnknown
}

// CallStatus is the "status" of a statuses[] item of type "call".
type CallStatus uint8

const (
	StatusUnknown  CallStatus = iota // a status we do not know
	StatusRinging                    // "RINGING"
	StatusAccepted                   // "ACCEPTED"
	StatusRejected                   // "REJECTED"
)

var callStatusNames = []string{"unknown", "ringing", "accepted", "rejected"}

func (s CallStatus) String() string { return enumName(callStatusNames, uint8(s)) }

// MarshalText writes String().
func (s CallStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalJSON reads a name (any case) or a number.
func (s *CallStatus) UnmarshalJSON(b []byte) error {
	v, err := enumFromJSON(b, callStatusNames, nil)
	*s = CallStatus(v)
	return err
}

func parseCallStatus(s string) CallStatus { return CallStatus(nameIndex(callStatusNames, s)) }

// DeliveryStatus is the "status" of a message status (statuses[] about a
// message we sent).
type DeliveryStatus uint8

const (
	DeliveryUnknown   DeliveryStatus = iota // a status we do not know
	DeliverySent                            // "sent"
	DeliveryDelivered                       // "delivered"
	DeliveryRead                            // "read"
	DeliveryFailed                          // "failed"
)

var deliveryNames = []string{"unknown", "sent", "delivered", "read", "failed"}

func (s DeliveryStatus) String() string { return enumName(deliveryNames, uint8(s)) }

// MarshalText writes String().
func (s DeliveryStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalJSON reads a name (any case) or a number.
func (s *DeliveryStatus) UnmarshalJSON(b []byte) error {
	v, err := enumFromJSON(b, deliveryNames, nil)
	*s = DeliveryStatus(v)
	return err
}

func parseDeliveryStatus(s string) DeliveryStatus { return DeliveryStatus(nameIndex(deliveryNames, s)) }

// IdentityChangeKind is the system.type of an identity-change system message.
type IdentityChangeKind uint8

const (
	IdentityChangeUnknown IdentityChangeKind = iota
	// IdentityChangedNumber: "user_changed_number" (older payloads:
	// "customer_changed_number"); the BSUID is regenerated too.
	IdentityChangedNumber
	// IdentityChangedUserID: "user_changed_user_id" (since 2026-08-11).
	IdentityChangedUserID
)

var identityNames = []string{"unknown", "user_changed_number", "user_changed_user_id"}

func (k IdentityChangeKind) String() string { return enumName(identityNames, uint8(k)) }

// MarshalText writes String().
func (k IdentityChangeKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalJSON reads a name (any case) or a number.
func (k *IdentityChangeKind) UnmarshalJSON(b []byte) error {
	v, err := enumFromJSON(b, identityNames, func(s string) uint8 { return uint8(parseIdentityChangeKind(s)) })
	*k = IdentityChangeKind(v)
	return err
}

func parseIdentityChangeKind(s string) IdentityChangeKind {
	switch strings.ToLower(s) {
	case "user_changed_number", "customer_changed_number":
		return IdentityChangedNumber
	case "user_changed_user_id":
		return IdentityChangedUserID
	}
	return IdentityChangeUnknown
}

// MediaKind says which media object a MediaRef came from.
type MediaKind uint8

const (
	MediaUnknown  MediaKind = iota
	MediaAudio              // "audio" (call_recording.audio)
	MediaDocument           // "document" (call_transcript.document)
)

var mediaNames = []string{"unknown", "audio", "document"}

func (k MediaKind) String() string { return enumName(mediaNames, uint8(k)) }

// MarshalText writes String().
func (k MediaKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalJSON reads a name (any case) or a number.
func (k *MediaKind) UnmarshalJSON(b []byte) error {
	v, err := enumFromJSON(b, mediaNames, nil)
	*k = MediaKind(v)
	return err
}

func enumName(names []string, v uint8) string {
	if int(v) < len(names) {
		return names[v]
	}
	return "unknown"
}

func nameIndex(names []string, s string) uint8 {
	for i, n := range names[1:] {
		if strings.EqualFold(s, n) {
			return uint8(i + 1)
		}
	}
	return 0
}

// enumFromJSON reads a JSON string (through parse, or a case-insensitive
// match in names) or a number in range; anything unknown is 0.
func enumFromJSON(b []byte, names []string, parse func(string) uint8) (uint8, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
		if parse != nil {
			return parse(s), nil
		}
		return nameIndex(names, s), nil
	}
	if string(b) == "null" {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(b), 10, 8)
	if err != nil || int(n) >= len(names) {
		return 0, nil
	}
	return uint8(n), nil
}
