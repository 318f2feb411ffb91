package phone

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// maxInputLen bounds what Parse will look at; E.164 is at most 15 digits, so
// anything much longer (even with separators) is not a number.
const maxInputLen = 32

// Number is a parsed, valid phone number.
type Number struct {
	E164        string // "+447700900123"
	Digits      string // "447700900123": E.164 without '+', WhatsApp's wa_id form
	Region      string // ISO 3166-1 alpha-2, "GB"; "" for non-geographic numbers (+800, +882...)
	CountryCode int    // 44
}

// String returns the E.164 form.
func (n Number) String() string { return n.E164 }

// Parse reads a number in international form, with or without the leading
// '+', tolerating spaces, dashes, dots and parentheses: "+44 7700 900-123",
// "447700900123", "+1 (876) 555-0123". National forms ("07700 900123"),
// letters, and numbers phonenumbers does not consider valid are rejected
// with an error wrapping ErrInvalid.
func Parse(s string) (Number, error) {
	clean, err := normalize(s)
	if err != nil {
		return Number{}, err
	}
	pn, err := phonenumbers.Parse(clean, "ZZ")
	if err != nil {
		return Number{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	e164 := phonenumbers.Format(pn, phonenumbers.E164)
	var region string
	switch {
	case phonenumbers.IsValidNumber(pn):
		region = phonenumbers.GetRegionCodeForNumber(pn)
	case isFictional(e164):
		region = phonenumbers.GetRegionCodeForCountryCode(int(pn.GetCountryCode()))
	default:
		return Number{}, fmt.Errorf("%w: %q is not an assigned number range", ErrInvalid, clean)
	}
	if len(region) != 2 || region == "ZZ" {
		region = "" // "001" = non-geographic entity
	}
	return Number{
		E164:        e164,
		Digits:      strings.TrimPrefix(e164, "+"),
		Region:      region,
		CountryCode: int(pn.GetCountryCode()),
	}, nil
}

// fictionalRanges are number ranges reserved for drama and documentation
// that libphonenumber (rightly) reports as unassigned. They are accepted so
// that Meta's own examples and callgw's fixtures ("+447700900123") parse; a
// real user can never have one, so nothing is ever billed or dialled wrongly.
// This is not a region table: the region still comes from phonenumbers.
var fictionalRanges = [...]struct {
	prefix string
	length int // length of the E.164 string, '+' included
}{
	{"+447700900", 13}, // Ofcom: 07700 900000-900999, UK mobile drama range
}

func isFictional(e164 string) bool {
	for _, r := range fictionalRanges {
		if len(e164) == r.length && strings.HasPrefix(e164, r.prefix) {
			return true
		}
	}
	return false
}

// normalize keeps the digits of s, checking that only separators surround
// them, and returns "+digits".
func normalize(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(s) > maxInputLen {
		return "", fmt.Errorf("%w: too long (%d bytes)", ErrInvalid, len(s))
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	b.WriteByte('+')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", fmt.Errorf("%w: unexpected character %q", ErrInvalid, c)
		}
	}
	if b.Len() == 1 {
		return "", fmt.Errorf("%w: no digits", ErrInvalid)
	}
	return b.String(), nil
}

// RegionOf returns the ISO alpha-2 region of s ("JM" for +1 876...), or ""
// when s is not a valid number or belongs to no single region.
func RegionOf(s string) string {
	n, err := Parse(s)
	if err != nil {
		return ""
	}
	return n.Region
}

// Mask hides a number for logs and UIs, keeping the '+', the country code and
// the last digits: "+447700900123" -> "+44*******123". The output is ASCII.
// Input that is not a valid number (a user id, garbage) is masked too,
// keeping at most its last two characters when it is long enough to stay
// anonymous. Mask never panics.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	if n, err := Parse(s); err == nil {
		cc := strconv.Itoa(n.CountryCode)
		national := n.Digits[len(cc):]
		keep := 3
		switch {
		case len(national) <= 4:
			keep = 0
		case len(national) <= 7:
			keep = 2
		}
		return "+" + cc + strings.Repeat("*", len(national)-keep) + national[len(national)-keep:]
	}
	// Not a number: never echo it. Count runes so multi-byte input cannot
	// be split mid-character.
	r := []rune(s)
	if len(r) > 64 {
		r = r[len(r)-64:]
	}
	if len(r) < 8 {
		return strings.Repeat("*", max(len(r), 3))
	}
	tail := r[len(r)-2:]
	for _, c := range tail {
		if c > 0x7e || c < 0x20 {
			return strings.Repeat("*", len(r))
		}
	}
	return strings.Repeat("*", len(r)-2) + string(tail)
}
