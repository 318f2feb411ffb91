package config

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// withRecording puts a recording mapping (lines indented for the number)
// into base's number; the mapping starts at line 9.
func withRecording(lines string) string {
	return base + "    recording:\n" + lines
}

func TestRecordingValid(t *testing.T) {
	def := DefaultRecording()
	tests := []struct {
		name string
		in   string
		want Recording
	}{
		{"absent = off", base, def},
		{"local notice", withRecording("      mode: local\n"), func() Recording {
			r := def
			r.Mode, r.Line = RecordLocal, 10
			return r
		}()},
		{"everything", withRecording(`      mode: both
      consent: explicit
      consent_by_country: {GB: notice, DE: explicit}
      consent_timeout_seconds: 5
      agent_may_stop: true
      agent_access: true
      retention_days: 0
      meta:
        recording: true
        transcription: false
        purpose: quality assurance and training
        announcement_language: en_GB
`), Recording{Mode: RecordBoth, Consent: ConsentExplicit, ConsentByCountry: map[string]Consent{"GB": ConsentNotice, "DE": ConsentExplicit},
			ConsentTimeoutSeconds: 5, AgentMayStop: true, AgentAccess: true, RetentionDays: 0, Line: 10,
			Meta: MetaRecording{Recording: true, Purpose: "quality assurance and training", AnnouncementLanguage: "en_GB"}}},
		{"meta transcription only, defaults", withRecording("      mode: meta\n      meta: {transcription: true}\n"), func() Recording {
			r := def
			r.Mode, r.Line, r.Meta.Transcription = RecordMeta, 10, true
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in), "f.yaml")
			if err != nil {
				t.Fatal(err)
			}
			got := c.Numbers[0].Recording
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("recording = %+v\nwant        %+v", got, tt.want)
			}
		})
	}
}

func TestRecordingErrors(t *testing.T) {
	long := strings.Repeat("x", 251)
	tests := []struct {
		name     string
		in       string
		want     error
		line     int
		contains string
	}{
		{"no mode", withRecording("      consent: notice\n"), ErrMissingField, 10, "mode"},
		{"unknown mode", withRecording("      mode: always\n"), ErrBadValue, 10, "always"},
		{"unknown consent", withRecording("      mode: local\n      consent: implied\n"), ErrBadValue, 11, "implied"},
		{"unknown field", withRecording("      mode: local\n      consnet: notice\n"), ErrUnknownField, 11, "consnet"},
		{"country lower case", withRecording("      mode: local\n      consent_by_country: {de: explicit}\n"), ErrBadValue, 11, "country code"},
		{"country consent unknown", withRecording("      mode: local\n      consent_by_country:\n        DE: maybe\n"), ErrBadValue, 12, "maybe"},
		{"country twice", withRecording("      mode: local\n      consent_by_country:\n        DE: notice\n        DE: explicit\n"), ErrBadValue, 13, "twice"},
		{"country map not a map", withRecording("      mode: local\n      consent_by_country: [DE]\n"), ErrBadValue, 11, "mapping"},
		{"retention negative", withRecording("      mode: local\n      retention_days: -1\n"), ErrBadValue, 11, "0..36500"},
		{"retention a duration", withRecording("      mode: local\n      retention_days: 90d\n"), ErrBadValue, 11, "90d"},
		{"timeout zero", withRecording("      mode: local\n      consent_timeout_seconds: 0\n"), ErrBadValue, 11, "1..60"},
		{"agent_may_stop not bool", withRecording("      mode: local\n      agent_may_stop: sometimes\n"), ErrBadValue, 11, "true or false"},
		{"meta mode asks nothing", withRecording("      mode: meta\n"), ErrMissingField, 10, "meta.recording"},
		{"meta both false", withRecording("      mode: both\n      meta: {recording: false}\n"), ErrMissingField, 11, "asks Meta for nothing"},
		{"purpose too long", withRecording("      mode: meta\n      meta:\n        recording: true\n        purpose: " + long + "\n"), ErrBadValue, 13, "251 characters"},
		{"purpose empty", withRecording("      mode: meta\n      meta:\n        recording: true\n        purpose: \"\"\n"), ErrBadValue, 13, "purpose"},
		{"bad language", withRecording("      mode: meta\n      meta:\n        recording: true\n        announcement_language: klingon\n"), ErrBadValue, 13, "klingon"},
		{"meta unknown field", withRecording("      mode: meta\n      meta:\n        recording: true\n        recordings: true\n"), ErrUnknownField, 13, "recordings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in), "f.yaml")
			if err == nil {
				t.Fatalf("accepted: %+v", c.Numbers[0].Recording)
			}
			if c != nil {
				t.Error("a config came back with the error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if line := firstLine(err, tt.want); line != tt.line {
				t.Errorf("line = %d, want %d (%v)", line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.contains) || !strings.Contains(err.Error(), "numbers[0].recording") {
				t.Errorf("error %q does not contain %q and the path", err, tt.contains)
			}
		})
	}
}

func TestConsentFor(t *testing.T) {
	r := Recording{Consent: ConsentNotice, ConsentByCountry: map[string]Consent{"DE": ConsentExplicit}}
	for _, tt := range []struct {
		country string
		want    Consent
	}{{"DE", ConsentExplicit}, {"de", ConsentExplicit}, {"GB", ConsentNotice}, {"", ConsentNotice}} {
		if got := r.ConsentFor(tt.country); got != tt.want {
			t.Errorf("ConsentFor(%q) = %v, want %v", tt.country, got, tt.want)
		}
	}
	if got := (Recording{}).ConsentFor("US"); got != ConsentNotice {
		t.Errorf("unset consent = %v, want notice", got)
	}
	for _, m := range []RecordingMode{RecordOff, RecordMeta, RecordLocal, RecordBoth} {
		if p, ok := ParseRecordingMode(m.String()); !ok || p != m {
			t.Errorf("mode %v does not round-trip", m)
		}
	}
	if !RecordBoth.Meta() || !RecordBoth.Local() || RecordMeta.Local() || RecordLocal.Meta() || RecordOff.Meta() {
		t.Error("Meta/Local")
	}
}

func TestRecordingFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    RecordingMode
		consent Consent
		days    int
		meta    bool
		err     string
	}{
		{"unset", nil, RecordOff, ConsentNotice, DefaultRetentionDays, false, ""},
		{"local", map[string]string{EnvRecording: "local"}, RecordLocal, ConsentNotice, DefaultRetentionDays, false, ""},
		{"both explicit 30 days", map[string]string{EnvRecording: "both", EnvRecordingConsent: "explicit", EnvRecordingRetention: "30"}, RecordBoth, ConsentExplicit, 30, true, ""},
		{"meta", map[string]string{EnvRecording: "meta"}, RecordMeta, ConsentNotice, DefaultRetentionDays, true, ""},
		{"bad mode", map[string]string{EnvRecording: "yes"}, 0, 0, 0, false, "CALLGW_RECORDING"},
		{"bad days", map[string]string{EnvRecording: "local", EnvRecordingRetention: "ninety"}, 0, 0, 0, false, "ninety"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := RecordingFromEnv(func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one naming %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Mode != tt.want || r.ConsentFor("") != tt.consent || r.RetentionDays != tt.days ||
				(r.Meta.Recording && r.Meta.Transcription) != tt.meta {
				t.Errorf("recording = %+v", r)
			}
			c, err := FromEnv(func(k string) string { return tt.env[k] }, "100000000000001")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Numbers[0].Recording; got.Mode != tt.want || got.RetentionDays != tt.days {
				t.Errorf("FromEnv recording = %+v", got)
			}
		})
	}
}

func TestSchemaRecordingMatchesParser(t *testing.T) {
	b, err := os.ReadFile("../deploy/callgw.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	rec := s.Defs["recording"].Properties
	keys := func(m map[string]json.RawMessage) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	var top []string
	for k := range rec {
		top = append(top, k)
	}
	slices.Sort(top)
	if want := slices.Sorted(slices.Values(recordingFields)); !reflect.DeepEqual(top, want) {
		t.Errorf("schema recording fields %v, parser %v", top, want)
	}
	if got, want := keys(rec["meta"].Properties), slices.Sorted(slices.Values(metaRecordingFields)); !reflect.DeepEqual(got, want) {
		t.Errorf("schema recording.meta fields %v, parser %v", got, want)
	}
}

func TestExampleRecording(t *testing.T) {
	c, err := Load("../deploy/callgw.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := c.Number("106540352242923")
	if n.Recording.Mode != RecordBoth || n.Recording.ConsentFor("DE") != ConsentExplicit || n.Recording.ConsentFor("ES") != ConsentNotice ||
		n.Recording.Meta.AnnouncementLanguage != "en_GB" {
		t.Errorf("example recording = %+v", n.Recording)
	}
	if v, _ := c.Number("106540352242922"); v.Recording.Mode != RecordOff {
		t.Errorf("first number recording = %+v", v.Recording)
	}
}
