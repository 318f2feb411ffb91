// Package phone owns callgw's handling of phone numbers: parsing any
// user-supplied or Meta-supplied number into E.164 / wa_id form with its
// ISO 3166-1 alpha-2 region (via github.com/nyaruka/phonenumbers, never a
// hand-written prefix table), and masking numbers for logs and UIs.
//
// It has no state, no configuration and no metrics.
package phone
