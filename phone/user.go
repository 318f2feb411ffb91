package phone

import (
	"fmt"
	"regexp"
	"strings"
)

// bsuidRe is a business-scoped user id (reference "BSUIDs"): ISO 3166
// alpha-2 country, '.', up to 128 alphanumerics; a parent BSUID has
// "ENT." between them. Case is preserved.
var bsuidRe = regexp.MustCompile(`^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$`)

// IsBSUID reports whether s has the form of a business-scoped user id.
func IsBSUID(s string) bool { return bsuidRe.MatchString(s) }

// IsParentBSUID reports whether s is a parent BSUID ("US.ENT.…").
func IsParentBSUID(s string) bool { return IsBSUID(s) && strings.HasPrefix(s[2:], ".ENT.") }

// User is a WhatsApp user as Meta names them: a phone number and/or a
// business-scoped user id. Either may be missing (a user with a username
// hides the number); both are kept when both are known.
type User struct {
	Phone  Number // zero when unknown
	BSUID  string // "US.13491208655302741918"; "" when unknown
	Parent string // parent BSUID, when the business uses them
	Name   string // profile name
	Handle string // username
}

// Known reports whether the user can be addressed at all.
func (u User) Known() bool { return u.Phone.E164 != "" || u.BSUID != "" }

// Key is the user's id for keys and pairs: the wa_id digits when the
// number is known, else the BSUID.
func (u User) Key() string {
	if u.Phone.Digits != "" {
		return u.Phone.Digits
	}
	return u.BSUID
}

// Country is the user's ISO 3166 alpha-2 country: from the number, else the
// BSUID's prefix.
func (u User) Country() string {
	if u.Phone.Region != "" {
		return u.Phone.Region
	}
	if len(u.BSUID) > 2 && u.BSUID[2] == '.' {
		return u.BSUID[:2]
	}
	return ""
}

// Masked is the user for logs and pages that must not show the number.
func (u User) Masked() string {
	switch {
	case u.Phone.E164 != "":
		return Mask(u.Phone.E164)
	case u.Handle != "":
		return "@" + u.Handle
	}
	return Mask(u.BSUID)
}

// ParseUser reads a phone number (as Parse) or a BSUID.
func ParseUser(s string) (User, error) {
	s = strings.TrimSpace(s)
	if IsBSUID(s) {
		return User{BSUID: s}, nil
	}
	n, err := Parse(s)
	if err != nil {
		return User{}, fmt.Errorf("%w: neither a phone number nor a business-scoped user id", ErrInvalid)
	}
	return User{Phone: n}, nil
}
