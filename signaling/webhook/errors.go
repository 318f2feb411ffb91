package webhook

import "errors"

var (
	// ErrMissingSignature is returned by Verify when the X-Hub-Signature-256
	// header is absent or empty.
	ErrMissingSignature = errors.New("webhook: missing X-Hub-Signature-256")
	// ErrBadSignature is returned by Verify when the header is not
	// "sha256=<64 hex>" or the HMAC does not match the body.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrNoAppSecret is returned by Verify when the app secret is empty: an
	// empty key would let anyone sign a body.
	ErrNoAppSecret = errors.New("webhook: empty app secret")
	// ErrBadVerifyToken is returned by VerifyChallenge when hub.verify_token
	// does not match (or no verify token is configured).
	ErrBadVerifyToken = errors.New("webhook: bad verify token")
	// ErrBadChallenge is returned by VerifyChallenge when hub.mode is not
	// "subscribe" or hub.challenge is missing or not a plain token.
	ErrBadChallenge = errors.New("webhook: bad subscription challenge")
	// ErrTooLarge is returned by Parse for a body over MaxBodyBytes.
	ErrTooLarge = errors.New("webhook: body too large")
	// ErrMalformed is returned (wrapped with detail) by Parse for a body that
	// is not JSON or not a whatsapp_business_account object with an entry
	// array. Bad items inside are reported in Batch.Skipped instead.
	ErrMalformed = errors.New("webhook: malformed payload")
)
