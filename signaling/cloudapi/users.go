package cloudapi

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// User is a WhatsApp user as the Graph API addresses them: a phone number
// (wa_id digits or E.164 with '+'), a business-scoped user id (BSUID), or
// both. Requests carry the number as "to" (call_permissions: user_wa_id) and
// the BSUID as "recipient"; when both are set both are sent and Meta uses
// the number.
type User struct {
	Phone string // wa_id or E.164; optional when BSUID is set
	BSUID string // "US.13491208655302741918" or parent "US.ENT.11815799212886844830"; case preserved
}

// Phone returns a User addressed by phone number only.
func Phone(n string) User { return User{Phone: n} }

// BSUID returns a User addressed by business-scoped user id only.
func BSUID(id string) User { return User{BSUID: id} }

const maxBSUIDIDLen = 128

var (
	bsuidRE       = regexp.MustCompile(`^[A-Z]{2}\.[A-Za-z0-9]{1,128}$`)
	parentBSUIDRE = regexp.MustCompile(`^[A-Z]{2}\.ENT\.[A-Za-z0-9]{1,128}$`)
)

// ValidateBSUID checks the reference's format: an ISO 3166 alpha-2 country
// (upper case), ".", then 1-128 letters or digits; or the parent form
// "CC.ENT.<1-128 letters or digits>". The id is never case-folded.
func ValidateBSUID(id string) error {
	if (bsuidRE.MatchString(id) || parentBSUIDRE.MatchString(id)) && isCountry(id[:2]) {
		return nil
	}
	return fmt.Errorf("%w: BSUID %q must be an ISO 3166 alpha-2 country code, \".\" and up to %d letters or digits (e.g. US.1349120865), or CC.ENT.<id>",
		ErrBadInput, maskBSUID(id), maxBSUIDIDLen)
}

// countries is the set of ISO 3166-1 alpha-2 codes a BSUID may start with:
// every region with phone numbers (libphonenumber, which also has XK, AC,
// TA) plus the ISO codes without numbering plans.
var countries = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{"AQ": true, "BV": true, "GS": true, "HM": true, "PN": true, "TF": true, "UM": true}
	for r := range phonenumbers.GetSupportedRegions() {
		m[r] = true
	}
	return m
})

func isCountry(cc string) bool { return countries()[cc] }

// IsParentBSUID reports the parent (multi-portfolio) form CC.ENT.<id>.
func IsParentBSUID(id string) bool { return parentBSUIDRE.MatchString(id) }

// Validate checks that u has a number and/or a BSUID, each well formed.
func (u User) Validate() error {
	if u.Phone == "" && u.BSUID == "" {
		return fmt.Errorf("%w: a user needs a phone number or a BSUID", ErrBadInput)
	}
	if u.Phone != "" {
		if err := checkNumber("phone number", u.Phone); err != nil {
			return err
		}
	}
	if u.BSUID != "" {
		return ValidateBSUID(u.BSUID)
	}
	return nil
}

// String masks the user for logs: "********0123" and/or "US.****1918".
func (u User) String() string {
	var parts []string
	if u.Phone != "" {
		parts = append(parts, maskPhone(u.Phone))
	}
	if u.BSUID != "" {
		parts = append(parts, maskBSUID(u.BSUID))
	}
	if len(parts) == 0 {
		return "(no user)"
	}
	return strings.Join(parts, "|")
}

// maskBSUID keeps the country prefix and the last four characters.
func maskBSUID(id string) string {
	cc, rest, ok := strings.Cut(id, ".")
	if !ok || len(cc) != 2 {
		return "****"
	}
	if len(rest) <= 4 {
		return cc + ".****"
	}
	return cc + ".****" + rest[len(rest)-4:]
}
