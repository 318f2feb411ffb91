package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ivrBase is base with two teams and an IVR on the number (line 11 is "ivr:").
const ivrBase = `teams:
  - id: a
    agents: [x]
  - id: b
    agents: [y]
numbers:
  - phone_number_id: "1"
    brand: B
    token_env: T
    teams: [a, b]
    ivr:
      start: main
      nodes:
        main:
          menu:
            prompt: builtin:menu_example
            options: {"1": one, "2": two}
            timeout: 3s
            retries: 1
            invalid: builtin:goodbye
            fallback: bye
        one: {team: a}
        two: {team: b}
        bye: {hangup: {prompt: builtin:goodbye}}
        cb: {callback: }
        hello: {play: {prompt: builtin:welcome, next: main}}
`

func TestParseIVR(t *testing.T) {
	c, err := Parse([]byte(ivrBase), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := c.Number("1")
	iv := n.IVR
	if iv == nil || iv.Start != "main" || len(iv.Nodes) != 6 {
		t.Fatalf("ivr %+v", iv)
	}
	m := iv.Nodes["main"]
	if m.Kind != IVRMenu || m.Timeout != 3*time.Second || m.Retries != 1 || m.Options["2"] != "two" ||
		m.Fallback != "bye" || m.Invalid != "builtin:goodbye" || m.Line != 14 {
		t.Fatalf("main %+v", m)
	}
	if iv.Nodes["two"].Team != "b" || iv.Nodes["cb"].Kind != IVRCallback || iv.Nodes["hello"].Next != "main" ||
		iv.Nodes["bye"].Prompt != "builtin:goodbye" {
		t.Fatalf("nodes %+v", iv.Nodes)
	}
	if d := strings.Replace(ivrBase, "            timeout: 3s\n            retries: 1\n", "", 1); true {
		c, err := Parse([]byte(d), "f.yaml")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := c.Number("1")
		if m := n.IVR.Nodes["main"]; m.Timeout != DefaultMenuTimeout || m.Retries != DefaultMenuRetries {
			t.Fatalf("defaults %+v", m)
		}
	}
	if IVRMenu.String() != "menu" || IVRKind(99).String() != "unknown" {
		t.Fatal("kind names")
	}
}

func TestParseIVRErrors(t *testing.T) {
	r := func(old, new string) string {
		if !strings.Contains(ivrBase, old) {
			t.Fatalf("%q not in the base", old)
		}
		return strings.Replace(ivrBase, old, new, 1)
	}
	tests := []struct {
		name     string
		in       string
		want     error
		line     int
		contains string
	}{
		{name: "unknown start", in: r("start: main", "start: nope"), want: ErrUnknownNode, line: 12, contains: `"nope"`},
		{name: "no start", in: r("      start: main\n", ""), want: ErrMissingField, line: 12},
		{name: "option to nowhere", in: r(`"2": two`, `"2": three`), want: ErrUnknownNode, line: 17, contains: `"three"`},
		{name: "bad key", in: r(`"2": two`, `"22": two`), want: ErrBadValue, line: 17, contains: `"22"`},
		{name: "no options", in: r(`{"1": one, "2": two}`, `{}`), want: ErrMissingField, line: 17},
		{name: "fallback to nowhere", in: r("fallback: bye", "fallback: by"), want: ErrUnknownNode, line: 21},
		{name: "unknown team", in: r("one: {team: a}", "one: {team: zz}"), want: ErrUnknownTeam, line: 22, contains: `"zz"`},
		{name: "two kinds in a node", in: r("one: {team: a}", "one: {team: a, hangup: }"), want: ErrBadValue, line: 22},
		{name: "no kind", in: r("one: {team: a}", "one: {}"), want: ErrMissingField, line: 22},
		{name: "unknown kind", in: r("one: {team: a}", "one: {voicemail: a}"), want: ErrUnknownField, line: 22},
		{name: "mp3 prompt", in: r("prompt: builtin:menu_example", "prompt: menu.mp3"), want: ErrBadValue, line: 16, contains: "menu.mp3"},
		{name: "bad builtin", in: r("prompt: builtin:menu_example", "prompt: builtin:Menu!"), want: ErrBadValue, line: 16},
		{name: "bad timeout", in: r("timeout: 3s", "timeout: 2h"), want: ErrBadDuration, line: 18},
		{name: "bad retries", in: r("retries: 1", "retries: 10"), want: ErrBadValue, line: 19},
		{name: "unknown menu field", in: r("retries: 1", "retries: 1\n            voicemail: yes"), want: ErrUnknownField, line: 20},
		{name: "play without next", in: r("hello: {play: {prompt: builtin:welcome, next: main}}", "hello: {play: {prompt: builtin:welcome}}"), want: ErrMissingField, line: 26},
		{name: "play loop", in: r("hello: {play: {prompt: builtin:welcome, next: main}}", "hello: {play: {prompt: builtin:welcome, next: hello}}"), want: ErrIVRLoop, line: 26, contains: "hello -> hello"},
		{name: "bad node id", in: r("        one: {team: a}", "        o ne: {team: a}"), want: ErrBadValue, line: 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in), "f.yaml")
			if err == nil || c != nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if line := firstLine(err, tt.want); line != tt.line {
				t.Errorf("line = %d, want %d (%v)", line, tt.line, err)
			}
			if tt.contains != "" && !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

func TestLoadIVRPromptFiles(t *testing.T) {
	dir := t.TempDir()
	ogg, err := os.ReadFile("../testdata/audio/caller-440.ogg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "menu.ogg"), ogg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fake.ogg"), []byte("not ogg"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(prompt string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(strings.Replace(ivrBase, "prompt: builtin:menu_example", "prompt: "+prompt, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Load(write("menu.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := c.Number("1")
	if got := n.IVR.Nodes["main"].Prompt; got != filepath.Join(dir, "menu.ogg") {
		t.Fatalf("prompt %q", got)
	}
	for _, bad := range []string{"fake.ogg", "missing.opus"} {
		_, err := Load(write(bad))
		if !errors.Is(err, ErrIVRPrompt) || firstLine(err, ErrIVRPrompt) != 16 {
			t.Fatalf("%s: %v", bad, err)
		}
	}
}
