package webhook

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func seedFixtures(f *testing.F, add func(body []byte)) {
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, p := range files {
		add(readFixture(f, filepath.Base(p)))
	}
}

func FuzzParse(f *testing.F) {
	seedFixtures(f, func(b []byte) { f.Add(b) })
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"calls","value":{"calls":[{"timestamp":1e3}]}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := Parse(body)
		if err != nil {
			if b != nil {
				t.Fatal("batch returned with error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		for i, e := range b.Events {
			if setCount(e) != 1 {
				t.Fatalf("event %d has %d kinds set", i, setCount(e))
			}
			if c := e.Call; c != nil {
				if c.DurationMismatch && (c.StartTime.IsZero() || c.EndTime.IsZero()) {
					t.Fatalf("mismatch flagged without start and end")
				}
				if c.Status != strings.ToUpper(c.Status) {
					t.Fatalf("status %q not upper-cased", c.Status)
				}
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	seedFixtures(f, func(b []byte) { f.Add(b, Sign(testSecret, b)) })
	f.Add([]byte("{}"), "sha256=")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if err := Verify(testSecret, body, Sign(testSecret, body)); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		err := Verify(testSecret, body, header)
		if err == nil {
			if !strings.EqualFold(strings.TrimSpace(header), Sign(testSecret, body)) {
				t.Fatalf("accepted header %q that is not the body's signature", header)
			}
			return
		}
		if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMissingSignature) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
