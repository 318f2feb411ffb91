package phone

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		e164   string
		region string
		cc     int
	}{
		{"NANP Jamaica 876", "+1 876 876 5432", "+18768765432", "JM", 1},
		{"NANP Canada 416", "+1 (416) 555-0199", "+14165550199", "CA", 1},
		{"NANP US 212", "+1 212 736 5000", "+12127365000", "US", 1},
		{"NANP Puerto Rico 787", "+1-787-722-1234", "+17877221234", "PR", 1},
		{"NANP US 415 without plus", "14155550123", "+14155550123", "US", 1},
		{"+7 Russia", "+7 916 123 45 67", "+79161234567", "RU", 7},
		{"+7 Kazakhstan 7xx", "+7 701 123 4567", "+77011234567", "KZ", 7},
		{"+44 GB mobile", "+44 7624 123456", "+447624123456", "IM", 44}, // 7624 is Manx Telecom mobile
		{"+44 GB London", "+44 20 7946 0018", "+442079460018", "GB", 44},
		{"+44 1624 Isle of Man", "+44 1624 756789", "+441624756789", "IM", 44},
		{"+44 Ofcom drama range", "+447700900123", "+447700900123", "GB", 44},
		{"wa_id form", "447700900123", "+447700900123", "GB", 44},
		{"UK style (0) trunk", "+44 (0) 20 7946 0018", "+442079460018", "GB", 44},
		{"France dotted", "+33.6.12.34.56.78", "+33612345678", "FR", 33},
		{"India", "+91 98765 43210", "+919876543210", "IN", 91},
		{"Brazil", "+55 11 98765 4321", "+5511987654321", "BR", 55},
		{"non-geographic +800", "+800 1234 5678", "+80012345678", "", 800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if n.E164 != tt.e164 || n.Region != tt.region || n.CountryCode != tt.cc {
				t.Fatalf("Parse(%q) = %+v, want e164 %s region %q cc %d", tt.in, n, tt.e164, tt.region, tt.cc)
			}
			if n.Digits != strings.TrimPrefix(tt.e164, "+") {
				t.Fatalf("Digits = %q", n.Digits)
			}
			if got := RegionOf(tt.in); got != tt.region {
				t.Fatalf("RegionOf(%q) = %q, want %q", tt.in, got, tt.region)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"spaces", "   "},
		{"only plus", "+"},
		{"letters", "+1 800 FLOWERS"},
		{"national form", "07700 900123"},
		{"unassigned GB range", "+44 1624 123456"},
		{"too short", "+44 12"},
		{"too long", "+4477009001234567890123"},
		{"unknown country code", "+999 123 456 789"},
		{"plus in middle", "44+7700900123"},
		{"unicode digits", "+٤٤٧٧٠٠٩٠٠١٢٣"},
		{"user id", "US.13491208655302741918"},
		{"overlong garbage", strings.Repeat("1", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(tt.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %+v, %v; want ErrInvalid", tt.in, n, err)
			}
			if n != (Number{}) {
				t.Fatalf("Parse(%q) returned a value with an error: %+v", tt.in, n)
			}
			if r := RegionOf(tt.in); r != "" {
				t.Fatalf("RegionOf(%q) = %q, want empty", tt.in, r)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"GB mobile", "+447700900123", "+44*******123"},
		{"wa_id form", "447700900123", "+44*******123"},
		{"NANP", "+1 876 876 5432", "+1*******432"},
		{"France", "+33612345678", "+33******678"},
		{"empty", "", ""},
		{"short garbage", "abc", "***"},
		{"user id", "US.13491208655302741918", "*********************18"},
		{"invalid digits", "+44 12", "******"},
		{"non-ascii tail", "номер телефона", "**************"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mask(tt.in); got != tt.want {
				t.Fatalf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMaskNeverLeaks checks the property every log line relies on: the
// masked form never contains the subscriber part of a number.
func TestMaskNeverLeaks(t *testing.T) {
	for _, in := range []string{"+447700900123", "+18768765432", "+79161234567", "+5511987654321", "447700900123"} {
		n, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		m := Mask(in)
		national := strings.TrimPrefix(n.Digits, strconv.Itoa(n.CountryCode))
		if strings.Contains(m, national[:len(national)-3]) || strings.Count(m, "*") != len(national)-3 {
			t.Fatalf("Mask(%q) = %q leaks %q", in, m, national)
		}
	}
}

func FuzzParseMask(f *testing.F) {
	for _, s := range []string{"+447700900123", "1 876 876 5432", "", "+", "abc", "+800 1234 5678", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := Mask(s) // must not panic
		for i := 0; i < len(m); i++ {
			if m[i] > 0x7e {
				t.Fatalf("Mask(%q) = %q is not ASCII", s, m)
			}
		}
		n, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(n.E164)
		if err != nil || again != n {
			t.Fatalf("Parse(%q) = %+v does not round-trip: %+v, %v", s, n, again, err)
		}
	})
}
