package webhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/webhooks/*.want.json from the parser's output")

const fixtureDir = "../../testdata/webhooks"

// fixtureFiles lists the payload fixtures (not the .want.json goldens).
func fixtureFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".want.json") {
			out = append(out, filepath.Base(f))
		}
	}
	if len(out) == 0 {
		tb.Fatal("no fixtures")
	}
	return out
}

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	return b
}

func goldenName(fixture string) string { return strings.TrimSuffix(fixture, ".json") + ".want.json" }

// encodeBatch is the golden form of a parse: indented JSON, HTML not escaped.
func encodeBatch(tb testing.TB, b *Batch) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		tb.Fatalf("encode batch: %v", err)
	}
	return buf.Bytes()
}

// TestParseGolden parses every fixture and compares the whole Batch with
// its golden file (go test ./signaling/webhook -update rewrites them). It
// also checks what must hold for any payload: one kind per event, Raw is a
// copy of a piece of the body, and the JSON form of a Batch (which
// signaling keeps in Redis and forwards between nodes) reads back the same.
func TestParseGolden(t *testing.T) {
	for _, name := range fixtureFiles(t) {
		t.Run(name, func(t *testing.T) {
			body := readFixture(t, name)
			b, err := Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, body, b)
			got := encodeBatch(t, b)
			if slow, err := parse(body, true); err != nil || !bytes.Equal(encodeBatch(t, slow), got) {
				t.Errorf("the piece-by-piece decode differs from the fast one (%v)", err)
			}
			golden := filepath.Join(fixtureDir, goldenName(name))
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (run with -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parse differs from %s (run with -update if intended)\n got: %s", goldenName(name), got)
			}
			var back Batch
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatalf("golden does not decode: %v", err)
			}
			if again := encodeBatch(t, &back); !bytes.Equal(again, want) {
				t.Errorf("JSON round trip changes the batch\n got: %s", again)
			}
		})
	}
	// Every golden file has its fixture.
	goldens, _ := filepath.Glob(filepath.Join(fixtureDir, "*.want.json"))
	for _, g := range goldens {
		fx := strings.TrimSuffix(filepath.Base(g), ".want.json") + ".json"
		if _, err := os.Stat(filepath.Join(fixtureDir, fx)); err != nil {
			t.Errorf("golden %s has no fixture %s", filepath.Base(g), fx)
		}
	}
}

func checkInvariants(t *testing.T, body []byte, b *Batch) {
	t.Helper()
	for i, e := range b.Events {
		if n := setCount(e); n != 1 {
			t.Errorf("event %d has %d kinds set, want 1", i, n)
		}
		if len(e.Raw) == 0 || !json.Valid(e.Raw) {
			t.Errorf("event %d: Raw is not JSON: %.60q", i, e.Raw)
		}
		if !bytes.Contains(body, e.Raw) {
			t.Errorf("event %d: Raw is not a piece of the body", i)
		}
		if e.Field == "" {
			t.Errorf("event %d: no Field", i)
		}
		if c := e.Call; c != nil && c.SDP != "" && !strings.HasPrefix(c.SDP, "v=0\r\n") {
			t.Errorf("event %d: SDP not decoded verbatim: %.40q", i, c.SDP)
		}
	}
	for _, s := range b.Skipped {
		if s.Where == "" || s.Reason == "" {
			t.Errorf("skipped without where or reason: %+v", s)
		}
	}
}

func setCount(e Event) int {
	n := 0
	for _, set := range []bool{e.Call != nil, e.Status != nil, e.Permission != nil, e.MessageStatus != nil,
		e.UserMessage != nil, e.IdentityChange != nil, e.SettingsUpdate != nil, e.AccountUpdate != nil, e.Unknown != nil} {
		if set {
			n++
		}
	}
	return n
}
