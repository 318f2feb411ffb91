package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// RecordingMode says who records a number's calls.
type RecordingMode uint8

const (
	RecordOff   RecordingMode = iota // nothing is recorded (the default)
	RecordMeta                       // Meta's native recording and/or transcription
	RecordLocal                      // callgw's own per-direction Ogg/Opus recording, after a consent prompt
	RecordBoth                       // both
)

var recordingModeNames = [...]string{"off", "meta", "local", "both"}

func (m RecordingMode) String() string {
	if int(m) < len(recordingModeNames) {
		return recordingModeNames[m]
	}
	return "unknown"
}

// ParseRecordingMode reads off, meta, local or both.
func ParseRecordingMode(s string) (RecordingMode, bool) {
	for i, n := range recordingModeNames {
		if n == s {
			return RecordingMode(i), true
		}
	}
	return RecordOff, false
}

// Meta reports whether Meta is asked to record or transcribe.
func (m RecordingMode) Meta() bool { return m == RecordMeta || m == RecordBoth }

// Local reports whether callgw records the call itself.
func (m RecordingMode) Local() bool { return m == RecordLocal || m == RecordBoth }

// Consent is how the caller's consent to a local recording is obtained.
type Consent uint8

const (
	ConsentUnknown  Consent = iota
	ConsentNotice           // a prompt says the call is recorded, then it is
	ConsentExplicit         // a prompt asks the caller to press 1; no key, no recording
)

var consentNames = [...]string{"unknown", "notice", "explicit"}

func (c Consent) String() string {
	if int(c) < len(consentNames) {
		return consentNames[c]
	}
	return "unknown"
}

// ParseConsent reads notice or explicit.
func ParseConsent(s string) (Consent, bool) {
	for i, n := range consentNames {
		if i > 0 && n == s {
			return Consent(i), true
		}
	}
	return ConsentUnknown, false
}

// Defaults and limits of the recording settings.
const (
	DefaultRetentionDays     = 90
	MaxRetentionDays         = 36500
	MaxRecordingPurpose      = 250 // Meta's limit, characters
	DefaultRecordingPurpose  = "quality assurance"
	DefaultAnnouncementLang  = "en_US"
	DefaultConsentKeyTimeout = 8 // seconds the caller has to press 1 (explicit consent)
)

// AnnouncementLanguages are the languages of Meta's recording notice
// (reference: "Recording and transcription").
var AnnouncementLanguages = []string{"en", "en_US", "en_AU", "en_CA", "en_GB", "en_IN", "en_NZ",
	"nl", "fr", "de", "hi", "it", "kn", "pt", "es", "es_ES", "te", "vi"}

// MetaRecording is what Meta is asked for on accept/connect.
type MetaRecording struct {
	Recording            bool   // the "recording" object, ENABLED
	Transcription        bool   // the "transcription" object, ENABLED
	Purpose              string // spoken by Meta's notice; ≤ 250 characters, in the announcement language
	AnnouncementLanguage string // one of AnnouncementLanguages
}

// Recording is a number's recording policy (numbers[].recording).
type Recording struct {
	Mode RecordingMode
	// Consent is the default consent of local recordings (notice when unset).
	Consent Consent
	// ConsentByCountry overrides Consent by the caller's country (ISO
	// 3166 alpha-2 of their phone number); callers without a number (BSUID
	// only) get Consent.
	ConsentByCountry map[string]Consent
	// ConsentTimeout is how long the caller has to press 1 (explicit).
	ConsentTimeoutSeconds int
	// AgentMayStop lets the agent on the call stop the local recording.
	AgentMayStop bool
	// AgentAccess lets agents list and play the recordings of their own
	// calls (supervisors and admins always may).
	AgentAccess bool
	// RetentionDays: stored recordings and transcripts are deleted this
	// long after they are stored; 0 keeps them.
	RetentionDays int
	Meta          MetaRecording
	Line          int // line of the recording mapping in Source (0 when defaulted)
}

// ConsentFor is the consent to ask of a caller from country ("" = unknown).
func (r Recording) ConsentFor(country string) Consent {
	if c, ok := r.ConsentByCountry[strings.ToUpper(country)]; ok && country != "" {
		return c
	}
	if r.Consent == ConsentUnknown {
		return ConsentNotice
	}
	return r.Consent
}

// DefaultRecording is the policy of a number without a recording key.
func DefaultRecording() Recording {
	return Recording{Mode: RecordOff, Consent: ConsentNotice, RetentionDays: DefaultRetentionDays,
		ConsentTimeoutSeconds: DefaultConsentKeyTimeout,
		Meta:                  MetaRecording{Purpose: DefaultRecordingPurpose, AnnouncementLanguage: DefaultAnnouncementLang}}
}

// numbers[].recording is one more field of a number (parse.go's list).
func init() { numberFields = append(numberFields, "recording") }

var (
	recordingFields = []string{"mode", "consent", "consent_by_country", "consent_timeout_seconds", "agent_may_stop",
		"agent_access", "retention_days", "meta"}
	metaRecordingFields = []string{"recording", "transcription", "purpose", "announcement_language"}
	countryRE           = regexp.MustCompile(`^[A-Z]{2}$`)
)

// recording reads numbers[].recording.
func (p *parser) recording(n *yaml.Node, path string) Recording {
	r := DefaultRecording()
	if n == nil || n.Tag == "!!null" {
		return r
	}
	r.Line = n.Line
	f := p.fields(n, path, recordingFields...)
	if mn := p.required(f, n, path, "mode"); mn != nil {
		if m, ok := ParseRecordingMode(mn.Value); ok && mn.Kind == yaml.ScalarNode {
			r.Mode = m
		} else {
			p.fail(mn, join(path, "mode"), ErrBadValue, "unknown recording mode %q (want off, meta, local or both)", mn.Value)
		}
	}
	if cn := f["consent"]; cn != nil {
		if c, ok := ParseConsent(cn.Value); ok && cn.Kind == yaml.ScalarNode {
			r.Consent = c
		} else {
			p.fail(cn, join(path, "consent"), ErrBadValue, "unknown consent %q (want notice or explicit)", cn.Value)
		}
	}
	if cn := f["consent_by_country"]; cn != nil && cn.Tag != "!!null" {
		cpath := join(path, "consent_by_country")
		cf := map[string]*yaml.Node{}
		if cn.Kind != yaml.MappingNode {
			p.fail(cn, cpath, ErrBadValue, "want a mapping of country (ISO 3166 alpha-2, e.g. DE) to notice or explicit")
		} else {
			for i := 0; i+1 < len(cn.Content); i += 2 {
				k, v := cn.Content[i], cn.Content[i+1]
				kpath := join(cpath, k.Value)
				switch {
				case !countryRE.MatchString(k.Value):
					p.fail(k, kpath, ErrBadValue, "%q is not a country code (two capital letters, e.g. DE)", k.Value)
				case cf[k.Value] != nil:
					p.fail(k, kpath, ErrBadValue, "country given twice (first at line %d)", cf[k.Value].Line)
				default:
					cf[k.Value] = k
					c, ok := ParseConsent(v.Value)
					if !ok || v.Kind != yaml.ScalarNode {
						p.fail(v, kpath, ErrBadValue, "unknown consent %q (want notice or explicit)", v.Value)
						continue
					}
					if r.ConsentByCountry == nil {
						r.ConsentByCountry = map[string]Consent{}
					}
					r.ConsentByCountry[k.Value] = c
				}
			}
		}
	}
	r.ConsentTimeoutSeconds = p.intIn(f["consent_timeout_seconds"], join(path, "consent_timeout_seconds"), r.ConsentTimeoutSeconds, 1, 60)
	r.AgentMayStop = p.boolean(f["agent_may_stop"], join(path, "agent_may_stop"), false)
	r.AgentAccess = p.boolean(f["agent_access"], join(path, "agent_access"), false)
	r.RetentionDays = p.intIn(f["retention_days"], join(path, "retention_days"), r.RetentionDays, 0, MaxRetentionDays)

	mpath := join(path, "meta")
	if mn := f["meta"]; mn != nil && mn.Tag != "!!null" {
		mf := p.fields(mn, mpath, metaRecordingFields...)
		r.Meta.Recording = p.boolean(mf["recording"], join(mpath, "recording"), false)
		r.Meta.Transcription = p.boolean(mf["transcription"], join(mpath, "transcription"), false)
		if pn := mf["purpose"]; pn != nil {
			v := p.str(pn, join(mpath, "purpose"), true, nil, "a purpose (text Meta reads to both sides)")
			if n := utf8.RuneCountInString(v); v == "" {
				p.fail(pn, join(mpath, "purpose"), ErrBadValue, "purpose is empty (Meta requires one, said in its notice)")
			} else if n > MaxRecordingPurpose {
				p.fail(pn, join(mpath, "purpose"), ErrBadValue, "purpose is %d characters, Meta allows %d", n, MaxRecordingPurpose)
			} else if v != "" {
				r.Meta.Purpose = v
			}
		}
		if ln := mf["announcement_language"]; ln != nil {
			v := p.str(ln, join(mpath, "announcement_language"), true, nil, "a language")
			if v != "" && !slices.Contains(AnnouncementLanguages, v) {
				p.fail(ln, join(mpath, "announcement_language"), ErrBadValue, "%q is not a language of Meta's notice (%s)", v, strings.Join(AnnouncementLanguages, ", "))
			} else if v != "" {
				r.Meta.AnnouncementLanguage = v
			}
		}
	}
	if r.Mode.Meta() && !r.Meta.Recording && !r.Meta.Transcription {
		at := f["meta"]
		if at == nil {
			at = f["mode"]
		}
		p.fail(at, mpath, ErrMissingField, "mode %s asks Meta for nothing: set meta.recording and/or meta.transcription to true", r.Mode)
	}
	return r
}

func (p *parser) boolean(n *yaml.Node, path string, def bool) bool {
	if n == nil {
		return def
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.Value == "true":
		return true
	case n.Kind == yaml.ScalarNode && n.Value == "false":
		return false
	}
	p.fail(n, path, ErrBadValue, "want true or false, got %q", n.Value)
	return def
}

func (p *parser) intIn(n *yaml.Node, path string, def, lo, hi int) int {
	if n == nil {
		return def
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < lo || v > hi {
		p.fail(n, path, ErrBadValue, "want a whole number %d..%d, got %q", lo, hi, n.Value)
		return def
	}
	return v
}

// Variables of an env-only deployment's recording policy (FromEnv,
// RecordingFromEnv).
const (
	EnvRecording          = "CALLGW_RECORDING"                // off | meta | local | both
	EnvRecordingConsent   = "CALLGW_RECORDING_CONSENT"        // notice | explicit
	EnvRecordingRetention = "CALLGW_RECORDING_RETENTION_DAYS" // 0 keeps
)

// recordingEnvYAML is the numbers[].recording mapping of the variables, ""
// when CALLGW_RECORDING is unset. Values are quoted: Parse judges them.
func recordingEnvYAML(getenv func(string) string) string {
	mode := getenv(EnvRecording)
	if mode == "" {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    recording:\n      mode: %q\n", mode)
	if c := getenv(EnvRecordingConsent); c != "" {
		fmt.Fprintf(&b, "      consent: %q\n", c)
	}
	if d := getenv(EnvRecordingRetention); d != "" {
		fmt.Fprintf(&b, "      retention_days: %q\n", d)
	}
	if m, ok := ParseRecordingMode(mode); ok && m.Meta() {
		b.WriteString("      meta: {recording: true, transcription: true}\n")
	}
	return b.String()
}

// RecordingFromEnv is the recording policy the variables give the single
// number of an env-only deployment (DefaultRecording when CALLGW_RECORDING
// is unset). Errors name the variable.
func RecordingFromEnv(getenv func(string) string) (Recording, error) {
	y := recordingEnvYAML(getenv)
	if y == "" {
		return DefaultRecording(), nil
	}
	doc := "version: 1\nteams: [{id: t, agents: [\"*\"]}]\nnumbers:\n  - phone_number_id: \"1\"\n    brand: b\n    token_env: T\n    teams: [t]\n" + y
	c, err := Parse([]byte(doc), "<env>")
	if err != nil {
		return Recording{}, fmt.Errorf("%s, %s, %s: %w", EnvRecording, EnvRecordingConsent, EnvRecordingRetention, err)
	}
	return c.Numbers[0].Recording, nil
}
