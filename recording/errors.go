package recording

import "errors"

var (
	// ErrNotRecordingEvent is returned by ParseEvent for a calls[] item that
	// is not call_recording_available or call_transcription_available.
	ErrNotRecordingEvent = errors.New("recording: not a recording or transcription event")
	// ErrBadNotice is returned for a notice that misses an id, a media id, a
	// number, or has malformed values; nothing is recorded.
	ErrBadNotice = errors.New("recording: bad notice")
	// ErrBadSHA256 is returned when downloaded bytes do not match Meta's sha256.
	ErrBadSHA256 = errors.New("recording: sha256 mismatch")
	// ErrTooLarge is returned when a download exceeds the configured limit.
	ErrTooLarge = errors.New("recording: media too large")
	// ErrLinkExpired is returned when Meta refuses a download URL (expired or
	// revoked); a fresh one is fetched via GET /<MEDIA_ID>.
	ErrLinkExpired = errors.New("recording: media link expired")
	// ErrMediaGone is returned when Meta no longer has the media (deleted
	// after its 7-day retention, or never existed).
	ErrMediaGone = errors.New("recording: media no longer available at Meta")
	// ErrNotFound is returned for a call or kind with no index entry or no
	// stored object.
	ErrNotFound = errors.New("recording: not found")
	// ErrNoActor is returned by audited accesses without a who.
	ErrNoActor = errors.New("recording: access without an actor")
	// ErrLeaseHeld is returned by Retainer.RunOnce when another instance
	// holds the retention lease.
	ErrLeaseHeld = errors.New("recording: retention lease held by another instance")
	// ErrBadConfig is returned by constructors for an invalid configuration.
	ErrBadConfig = errors.New("recording: bad configuration")
	// ErrBadTranscript is returned for transcript JSON that does not parse.
	ErrBadTranscript = errors.New("recording: bad transcript")
)
