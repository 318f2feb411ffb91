package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseValid(t *testing.T) {
	b, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b, "valid.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := c.PhoneNumberIDs(); !reflect.DeepEqual(got, []string{"106540352242922", "106540352242923"}) {
		t.Errorf("numbers = %v", got)
	}
	n, ok := c.Number("106540352242922")
	n.holdLine, n.holdColumn = 0, 0
	if !ok || n.Brand != "Acme Spain" || n.TokenEnv != "CALLGW_TOKEN_ACME" || n.PermissionTemplate != "call_permission:es_ES" ||
		!reflect.DeepEqual(n.Teams, []TeamID{"sales-es", "support"}) || n.Line != 36 {
		t.Errorf("number = %+v", n)
	}
	s, _ := c.Team("sales-es")
	want := Team{ID: "sales-es", Name: "Ventas", Agents: []AgentID{"ana", "bruno"}, Strategy: RoundRobin,
		RingTime: 15 * time.Second, MaxWait: 90 * time.Second, MaxSize: 10, Overflow: "support", Line: 14}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("team = %+v\nwant   %+v", s, want)
	}
	v, _ := c.Team("vip")
	if v.Strategy != RingAll || v.MaxSize != 0 || v.MaxWait != DefaultMaxWait || v.RingTime != DefaultRingTime {
		t.Errorf("vip defaults = %+v", v)
	}
	if got := c.TeamsOf("bruno"); !reflect.DeepEqual(got, []TeamID{"sales-es", "support"}) {
		t.Errorf("TeamsOf(bruno) = %v", got)
	}
	if _, ok := c.Team("nope"); ok {
		t.Error("unknown team found")
	}
}

// TestDeployExample keeps the shipped example valid.
func TestDeployExample(t *testing.T) {
	a, err := os.ReadFile("../deploy/callgw.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load("../deploy/callgw.example.yaml"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("testdata/valid.yaml")
	if string(a) != string(b) {
		t.Error("testdata/valid.yaml must be a copy of deploy/callgw.example.yaml")
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	k, err := os.ReadFile("../deploy/k8s/routing-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(k, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["callgw.yaml"] != string(a) {
		t.Error("deploy/k8s/routing-configmap.yaml must embed deploy/callgw.example.yaml unchanged")
	}
}

const base = `teams:
  - id: a
    agents: [x, y]
numbers:
  - phone_number_id: "1"
    brand: B
    token_env: T
    teams: [a]
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     error
		line     int
		contains string
	}{
		{name: "bad yaml", in: "teams:\n  - id: a\n    agents: [x\n  - id: b\n", want: ErrSyntax, line: 2, contains: "did not find expected"},
		{name: "unclosed quote", in: "teams: []\nnumbers: []\nversion: \"1\n", want: ErrSyntax, line: 3},
		{name: "tab indentation", in: "teams:\n  - id: a\n\t- id: b\n", want: ErrSyntax, line: 2, contains: "tab"},
		{name: "empty file", in: "", want: ErrSyntax, contains: "empty"},
		{name: "two documents", in: base + "---\nteams: []\n", want: ErrSyntax, line: 9},
		{name: "unknown top field", in: base + "queues: 1\n", want: ErrUnknownField, line: 9, contains: "queues"},
		{name: "unknown team field", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    stratgy: ring_all\n", 1), want: ErrUnknownField, line: 4},
		{name: "unknown team in number", in: strings.Replace(base, "teams: [a]", "teams: [a, b]", 1), want: ErrUnknownTeam, line: 8, contains: `"b"`},
		{name: "unknown overflow team", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    overflow: zz\n", 1), want: ErrUnknownTeam, line: 4},
		{name: "duplicate number", in: base + "  - phone_number_id: \"1\"\n    brand: C\n    token_env: T\n    teams: [a]\n", want: ErrDuplicateNumber, line: 9, contains: "first at line 5"},
		{name: "duplicate team", in: strings.Replace(base, "numbers:", "  - id: a\n    agents: [x]\nnumbers:", 1), want: ErrDuplicateTeam, line: 4},
		{name: "agent in no team", in: "agents: [x, y, z]\n" + base, want: ErrAgentInNoTeam, line: 1, contains: `"z"`},
		{name: "undeclared agent", in: "agents: [x]\n" + base, want: ErrUnknownAgent, line: 4, contains: `"y"`},
		{name: "duplicate agent in team", in: strings.Replace(base, "[x, y]", "[x, y, x]", 1), want: ErrDuplicateAgent, line: 3},
		{name: "wildcard with others", in: strings.Replace(base, "[x, y]", `[x, "*"]`, 1), want: ErrBadValue, line: 3},
		{name: "no agents", in: strings.Replace(base, "[x, y]", "[]", 1), want: ErrMissingField, line: 3},
		{name: "overflow to itself", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    overflow: a\n", 1), want: ErrOverflowCycle, line: 4, contains: "a -> a"},
		{name: "overflow cycle of three", in: `teams:
  - id: a
    agents: [x]
    overflow: b
  - id: b
    agents: [x]
    overflow: c
  - id: c
    agents: [x]
    overflow: a
numbers:
  - {phone_number_id: "1", brand: B, token_env: T, teams: [a]}
`, want: ErrOverflowCycle, line: 4, contains: "a -> b -> c -> a"},
		{name: "unknown strategy", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    strategy: random\n", 1), want: ErrUnknownStrategy, line: 4, contains: "random"},
		{name: "bad max_wait", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    max_wait: 90\n", 1), want: ErrBadDuration, line: 4},
		{name: "negative max_wait", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    max_wait: -5s\n", 1), want: ErrBadDuration, line: 4},
		{name: "huge max_wait", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    max_wait: 48h\n", 1), want: ErrBadDuration, line: 4},
		{name: "ring_seconds not a number", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    ring_seconds: 15s\n", 1), want: ErrBadDuration, line: 4},
		{name: "ring_seconds zero", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    ring_seconds: 0\n", 1), want: ErrBadDuration, line: 4},
		{name: "max_size negative", in: strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    max_size: -1\n", 1), want: ErrBadValue, line: 4},
		{name: "bad template", in: strings.Replace(base, "    token_env: T\n", "    token_env: T\n    permission_template: call_permission\n", 1), want: ErrBadTemplate, line: 8},
		{name: "bad token env", in: strings.Replace(base, "token_env: T", "token_env: my-token", 1), want: ErrBadValue, line: 7},
		{name: "missing brand", in: strings.Replace(base, "    brand: B\n", "", 1), want: ErrMissingField, line: 5, contains: "brand"},
		{name: "missing numbers", in: "teams:\n  - id: a\n    agents: [x]\n", want: ErrMissingField, line: 1, contains: "numbers"},
		{name: "no numbers", in: "teams:\n  - id: a\n    agents: [x]\nnumbers: []\n", want: ErrMissingField, line: 4},
		{name: "hold audio not ogg", in: strings.Replace(base, "    teams: [a]\n", "    teams: [a]\n    hold_audio: /x/hold.mp3\n", 1), want: ErrBadValue, line: 9},
		{name: "phone number id not digits", in: strings.Replace(base, `"1"`, "abc", 1), want: ErrBadValue, line: 5},
		{name: "agent id with a brace", in: strings.Replace(base, "[x, y]", "[x, \"y{1}\"]", 1), want: ErrBadValue, line: 3},
		{name: "version 2", in: "version: 2\n" + base, want: ErrBadValue, line: 1},
		{name: "teams not a list", in: "teams: {a: 1}\nnumbers: []\n", want: ErrBadValue, line: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in), "f.yaml")
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if c != nil {
				t.Error("a config came back with the error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v is not an *Error", err)
			}
			// The first error of the wanted kind carries the line.
			line := firstLine(err, tt.want)
			if tt.line != 0 && line != tt.line {
				t.Errorf("line = %d, want %d (%v)", line, tt.line, err)
			}
			if tt.line != 0 && !strings.Contains(err.Error(), "f.yaml:") {
				t.Errorf("error does not name the file and line: %v", err)
			}
			if tt.contains != "" && !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

func firstLine(err error, sentinel error) int {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ce *Error
		if errors.As(e, &ce) && errors.Is(ce, sentinel) {
			return ce.Line
		}
	}
	return -1
}

func TestParseReportsEveryProblem(t *testing.T) {
	in := strings.Replace(base, "    agents: [x, y]\n", "    agents: [x, y]\n    strategy: nope\n    max_wait: soon\n", 1)
	_, err := Parse([]byte(in), "f.yaml")
	for _, want := range []error{ErrUnknownStrategy, ErrBadDuration} {
		if !errors.Is(err, want) {
			t.Errorf("err %v lacks %v", err, want)
		}
	}
}

func TestStrategy(t *testing.T) {
	for _, s := range []Strategy{RingAll, RoundRobin, LongestIdle} {
		got, ok := ParseStrategy(s.String())
		if !ok || got != s {
			t.Errorf("ParseStrategy(%q) = %v, %v", s, got, ok)
		}
	}
	if _, ok := ParseStrategy("unknown"); ok {
		t.Error("unknown parsed")
	}
	if Strategy(99).String() != "unknown" || !RoundRobin.Sequential() || RingAll.Sequential() {
		t.Error("String/Sequential")
	}
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		demo    string
		wantID  string
		wantErr error
	}{
		{name: "legacy deployment", env: map[string]string{EnvPhoneNumberID: "1065", EnvWABAID: "1022", EnvPermissionTemplate: "call_permission:en_US"}, wantID: "1065"},
		{name: "demo", env: map[string]string{}, demo: "100000000000001", wantID: "100000000000001"},
		{name: "no number", env: map[string]string{}, wantErr: ErrMissingField},
		{name: "bad template", env: map[string]string{EnvPhoneNumberID: "1065", EnvPermissionTemplate: "nocolon"}, wantErr: ErrBadTemplate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(func(k string) string { return tt.env[k] }, tt.demo)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n, ok := c.Number(tt.wantID)
			if !ok || n.TokenEnv != EnvAccessToken || n.WABAID != tt.env[EnvWABAID] || n.PermissionTemplate != tt.env[EnvPermissionTemplate] ||
				!reflect.DeepEqual(n.Teams, []TeamID{DefaultTeam}) {
				t.Fatalf("number = %+v", n)
			}
			team, _ := c.Team(DefaultTeam)
			if !team.Any() || !team.Has("anyone") || team.Has("") || team.Strategy != RingAll || team.MaxSize != 0 {
				t.Fatalf("default team = %+v", team)
			}
			if got := c.TeamsOf("someone"); !reflect.DeepEqual(got, []TeamID{DefaultTeam}) {
				t.Fatalf("TeamsOf = %v", got)
			}
		})
	}
}

// TestSchemaMatchesParser keeps deploy/callgw.schema.json in step with the
// fields the parser knows.
func TestSchemaMatchesParser(t *testing.T) {
	b, err := os.ReadFile("../deploy/callgw.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type obj struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Items      *obj                       `json:"items"`
	}
	var s obj
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	props := func(o *obj) []string {
		var out []string
		for k := range o.Properties {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	sub := func(name string) *obj {
		var o obj
		if err := json.Unmarshal(s.Properties[name], &o); err != nil || o.Items == nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		return o.Items
	}
	for _, c := range []struct {
		name string
		got  []string
		want []string
	}{
		{"top", props(&s), topFields},
		{"teams", props(sub("teams")), teamFields},
		{"numbers", props(sub("numbers")), numberFields},
	} {
		want := slices.Sorted(slices.Values(c.want))
		if !reflect.DeepEqual(c.got, want) {
			t.Errorf("schema %s fields %v, parser %v", c.name, c.got, want)
		}
	}
}

func TestLoadHoldAudio(t *testing.T) {
	dir := t.TempDir()
	ogg, err := os.ReadFile("../testdata/audio/caller-440.ogg")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("hold.ogg", ogg)
	write("fake.ogg", []byte("ID3 not ogg at all"))
	tests := []struct {
		name, hold string
		want       error
	}{
		{name: "relative to the file", hold: "hold.ogg"},
		{name: "absolute", hold: filepath.Join(dir, "hold.ogg")},
		{name: "missing", hold: "nope.ogg", want: ErrHoldAudio},
		{name: "not opus", hold: "fake.ogg", want: ErrHoldAudio},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write("c.yaml", []byte(strings.Replace(base, "    teams: [a]\n", "    teams: [a]\n    hold_audio: "+tt.hold+"\n", 1)))
			c, err := Load(p)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || firstLine(err, tt.want) != 9 {
					t.Fatalf("err = %v, want %v at line 9", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := c.Number("1"); n.HoldAudio != filepath.Join(dir, "hold.ogg") {
				t.Fatalf("HoldAudio = %q", n.HoldAudio)
			}
		})
	}
}
