package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func seedFixtures(f *testing.F, add func(body []byte)) {
	for _, name := range fixtureFiles(f) {
		add(readFixture(f, name))
	}
}

// FuzzParse: Parse never panics; it fails only with ErrMalformed or
// ErrTooLarge and then returns no batch; a batch has one kind per event,
// Raw is a copy of a piece of the body, and its JSON form reads back.
func FuzzParse(f *testing.F) {
	seedFixtures(f, func(b []byte) { f.Add(b) })
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"calls","value":{"calls":[{"timestamp":1e3}]}}]}]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[1,{"changes":"x"},{"changes":[{"field":"calls","value":{"calls":"x","errors":[{"code":{}}]}}]}]}`))
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
			// Raw is nil only for a change without a value.
			if e.Raw != nil && (!json.Valid(e.Raw) || !bytes.Contains(body, e.Raw)) {
				t.Fatalf("event %d: Raw %.60q is not a piece of the body", i, e.Raw)
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
		for _, s := range b.Skipped {
			if !strings.HasPrefix(s.Where, "entry[") || s.Reason == "" {
				t.Fatalf("bad skip %+v", s)
			}
		}
		out, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal batch: %v", err)
		}
		slow, err := parse(body, true)
		if err != nil {
			t.Fatalf("slow path failed where the fast one did not: %v", err)
		}
		if slowOut, _ := json.Marshal(slow); !bytes.Equal(slowOut, out) {
			t.Fatalf("fast and slow paths differ:\nfast %s\nslow %s", out, slowOut)
		}
		var back Batch
		if err := json.Unmarshal(out, &back); err != nil || len(back.Events) != len(b.Events) {
			t.Fatalf("batch JSON does not read back: %v", err)
		}
	})
}

// FuzzParseSibling puts a fuzzed item between two valid ones of the same
// list. Whenever the result is JSON, Parse must succeed and both valid
// siblings must come out as events: one bad item never sinks a batch.
func FuzzParseSibling(f *testing.F) {
	for _, name := range fixtureFiles(f) {
		var env struct {
			Entry []struct {
				Changes []struct {
					Value map[string]json.RawMessage `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if json.Unmarshal(readFixture(f, name), &env) != nil {
			continue
		}
		for _, e := range env.Entry {
			for _, c := range e.Changes {
				for list, kind := range map[string]uint8{"calls": 0, "statuses": 1, "messages": 2} {
					var items []json.RawMessage
					if json.Unmarshal(c.Value[list], &items) == nil {
						for _, it := range items {
							f.Add(kind, []byte(it))
						}
					}
				}
			}
		}
	}
	f.Add(uint8(0), []byte(`{"timestamp":{}}`))
	f.Add(uint8(1), []byte(`7`))
	f.Add(uint8(2), []byte(`{"interactive":{"type":"call_permission_reply","call_permission_reply":[]}}`))
	f.Fuzz(func(t *testing.T, kind uint8, item []byte) {
		if !json.Valid(item) {
			return // a fragment could restructure the envelope (e.g. a second "calls" key)
		}
		var field, list, a, z string
		switch kind % 3 {
		case 0:
			field, list = "calls", "calls"
			a, z = `{"id":"wacid.SIBLING_A","event":"connect"}`, `{"id":"wacid.SIBLING_Z","event":"terminate"}`
		case 1:
			field, list = "calls", "statuses"
			a, z = `{"id":"wacid.SIBLING_A","type":"call","status":"RINGING"}`, `{"id":"wamid.SIBLING_Z","status":"read"}`
		default:
			field, list = "messages", "messages"
			a, z = `{"id":"wamid.SIBLING_A","from":"1","type":"text"}`, `{"id":"wamid.SIBLING_Z","interactive":{"type":"call_permission_reply"}}`
		}
		body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"` + field +
			`","value":{"metadata":{"phone_number_id":"9"},"` + list + `":[` + a + `,` + string(item) + `,` + z + `]}}]}]}`)
		if len(body) > MaxBodyBytes {
			return
		}
		b, err := Parse(body)
		if err != nil {
			t.Fatalf("valid envelope rejected: %v", err)
		}
		var sawA, sawZ bool
		for _, e := range b.Events {
			if e.PhoneNumberID != "9" {
				t.Fatalf("event lost its number: %+v", e)
			}
			sawA = sawA || bytes.Contains(e.Raw, []byte("SIBLING_A")) && !bytes.Contains(item, []byte("SIBLING_A"))
			sawZ = sawZ || bytes.Contains(e.Raw, []byte("SIBLING_Z")) && !bytes.Contains(item, []byte("SIBLING_Z"))
		}
		if bytes.Contains(item, []byte("SIBLING")) {
			return // the item itself may pose as a sibling
		}
		if !sawA || !sawZ {
			t.Fatalf("a valid sibling was lost (A %v, Z %v); events %+v skipped %+v", sawA, sawZ, b.Events, b.Skipped)
		}
		if len(b.Events)+len(b.Skipped) < 3 {
			t.Fatalf("the middle item is neither an event nor skipped: %+v %+v", b.Events, b.Skipped)
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
