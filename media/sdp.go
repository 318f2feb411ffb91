package media

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// checkRemoteSDP parses a remote description and requires an audio m-line
// offering Opus/48000. It returns an error wrapping ErrBadSDP or ErrNoOpus.
func checkRemoteSDP(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return fmt.Errorf("%w: empty", ErrBadSDP)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(raw); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	audio := false
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		audio = true
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "<pt> opus/48000/2"
			_, enc, ok := strings.Cut(a.Value, " ")
			if ok && strings.HasPrefix(strings.ToLower(enc), "opus/48000") {
				return nil
			}
		}
	}
	if !audio {
		return fmt.Errorf("%w: no audio m-line", ErrNoOpus)
	}
	return fmt.Errorf("%w: audio m-line has no opus/48000 rtpmap", ErrNoOpus)
}
