package cloudapi

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MediaOpt is the "recording" or "transcription" object of connect (BIC)
// and accept (UIC):
// {"status":"ENABLED","purpose":"quality assurance","announcement_language":"en_US"}.
// Meta plays a spoken notice naming the purpose in the announcement
// language before capture starts; with both enabled one combined notice
// uses the recording object's purpose and language.
type MediaOpt struct {
	Status               string `json:"status"`                          // ENABLED | DISABLED
	Purpose              string `json:"purpose,omitempty"`               // required when ENABLED, ≤ 250 characters, in the announcement language
	AnnouncementLanguage string `json:"announcement_language,omitempty"` // one of AnnouncementLanguages; Meta's default when empty
}

// Media option statuses.
const (
	MediaEnabled  = "ENABLED"
	MediaDisabled = "DISABLED"
)

// MaxMediaPurpose is the limit on MediaOpt.Purpose, in characters.
const MaxMediaPurpose = 250

// AnnouncementLanguages are the notice languages the reference lists.
var AnnouncementLanguages = []string{"en", "en_US", "en_AU", "en_CA", "en_GB", "en_IN", "en_NZ",
	"nl", "fr", "de", "hi", "it", "kn", "pt", "es", "es_ES", "te", "vi"}

// Enabled returns an ENABLED option.
func Enabled(purpose, language string) *MediaOpt {
	return &MediaOpt{Status: MediaEnabled, Purpose: purpose, AnnouncementLanguage: language}
}

func (o *MediaOpt) validate(what string) error {
	if o == nil {
		return nil
	}
	switch o.Status {
	case MediaEnabled:
		if strings.TrimSpace(o.Purpose) == "" {
			return fmt.Errorf("%w: %s.purpose is required when %s is ENABLED", ErrBadInput, what, what)
		}
	case MediaDisabled:
	default:
		return fmt.Errorf("%w: %s.status %q must be ENABLED or DISABLED", ErrBadInput, what, o.Status)
	}
	if n := utf8.RuneCountInString(o.Purpose); n > MaxMediaPurpose || !utf8.ValidString(o.Purpose) {
		return fmt.Errorf("%w: %s.purpose is %d characters, limit %d (UTF-8)", ErrBadInput, what, n, MaxMediaPurpose)
	}
	if o.AnnouncementLanguage != "" && !slices.Contains(AnnouncementLanguages, o.AnnouncementLanguage) {
		return fmt.Errorf("%w: %s.announcement_language %q must be one of %v", ErrBadInput, what, o.AnnouncementLanguage, AnnouncementLanguages)
	}
	return nil
}
