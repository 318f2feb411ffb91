package cloudapi

import (
	"encoding/json"
	"testing"
)

func FuzzParseMicros(f *testing.F) {
	for _, s := range []string{"0.1234", "1.5e-3", "-2.25", "9223372036854.775807", "abc", "1/3", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMicros(s)
		if err != nil {
			return
		}
		// A whole number of micros round-trips.
		back := formatMicros(m)
		if m2, err := ParseMicros(back); err != nil || m2 != m {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, m, back, m2, err)
		}
	})
}

func formatMicros(m int64) string {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = uint64(-m)
	}
	s := json.Number(itoa(u/1_000_000) + "." + pad6(u%1_000_000)).String()
	if neg {
		return "-" + s
	}
	return s
}

func itoa(u uint64) string {
	if u == 0 {
		return "0"
	}
	var b []byte
	for ; u > 0; u /= 10 {
		b = append([]byte{byte('0' + u%10)}, b...)
	}
	return string(b)
}

func pad6(u uint64) string {
	s := itoa(u)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

func FuzzNextAllowed(f *testing.F) {
	for _, s := range []string{"2026-11-30T10:00:00Z", "1796032800", "Next call allowed at 2026-11-30 10:00:00.", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, details string) {
		tm, ok := NextAllowed(&Error{Code: CodeConnectedCallLimit, Details: details})
		if ok && tm.IsZero() {
			t.Fatalf("ok with a zero time for %q", details)
		}
	})
}

func FuzzUserValidate(f *testing.F) {
	for _, s := range []string{"US.13491208655302741918", "US.ENT.1", "us.1", "447700900123", ""} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, phone, bsuid string) {
		u := User{Phone: phone, BSUID: bsuid}
		if u.Validate() == nil {
			if len(u.BSUID) > 3+4+128 {
				t.Fatalf("accepted a too-long BSUID %q", u.BSUID)
			}
			_ = u.String()
		}
	})
}
