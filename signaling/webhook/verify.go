package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxBodyBytes is the largest delivery Meta sends (3 MB). Read at most this
// many bytes (plus one, to detect overflow) from a webhook request.
const MaxBodyBytes = 3 << 20

// SignatureHeader is the header carrying Meta's body signature.
const SignatureHeader = "X-Hub-Signature-256"

const signaturePrefix = "sha256="

// maxChallengeLen bounds the echoed hub.challenge (Meta sends a short integer).
const maxChallengeLen = 256

// Verify checks signatureHeader ("sha256=<hex>", the X-Hub-Signature-256
// value) against HMAC-SHA256(appSecret, body). body must be the raw bytes as
// received, before any decoding. The comparison is constant-time.
func Verify(appSecret []byte, body []byte, signatureHeader string) error {
	if len(appSecret) == 0 {
		return ErrNoAppSecret
	}
	sig := strings.TrimSpace(signatureHeader)
	if sig == "" {
		return ErrMissingSignature
	}
	if len(sig) < len(signaturePrefix) || !strings.EqualFold(sig[:len(signaturePrefix)], signaturePrefix) {
		return fmt.Errorf("%w: header does not start with %q", ErrBadSignature, signaturePrefix)
	}
	hexSig := sig[len(signaturePrefix):]
	if len(hexSig) != 2*sha256.Size {
		return fmt.Errorf("%w: want %d hex digits, got %d", ErrBadSignature, 2*sha256.Size, len(hexSig))
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(hexSig)); err != nil {
		return fmt.Errorf("%w: not hex", ErrBadSignature)
	}
	mac := hmac.New(sha256.New, appSecret)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got[:]) {
		return fmt.Errorf("%w: HMAC mismatch", ErrBadSignature)
	}
	return nil
}

// Sign returns the X-Hub-Signature-256 value Meta would send for body. It is
// the inverse of Verify, for simulators and tests.
func Sign(appSecret []byte, body []byte) string {
	mac := hmac.New(sha256.New, appSecret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// VerifyChallenge checks Meta's subscription request
// (GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C) and returns C,
// to be written as the 200 response body. Any error means: answer 403.
// The token is compared in constant time; an empty verifyToken never matches.
// The challenge must be 1-256 characters of [A-Za-z0-9._-] so that echoing it
// cannot inject markup.
func VerifyChallenge(q url.Values, verifyToken string) (challenge string, err error) {
	if mode := q.Get("hub.mode"); mode != "subscribe" {
		return "", fmt.Errorf("%w: hub.mode %q, want \"subscribe\"", ErrBadChallenge, truncate(mode, 32))
	}
	token := q.Get("hub.verify_token")
	if verifyToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(verifyToken)) != 1 {
		return "", ErrBadVerifyToken
	}
	challenge = q.Get("hub.challenge")
	if challenge == "" {
		return "", fmt.Errorf("%w: empty hub.challenge", ErrBadChallenge)
	}
	if len(challenge) > maxChallengeLen {
		return "", fmt.Errorf("%w: hub.challenge longer than %d", ErrBadChallenge, maxChallengeLen)
	}
	for i := 0; i < len(challenge); i++ {
		c := challenge[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return "", fmt.Errorf("%w: hub.challenge has character %q", ErrBadChallenge, c)
		}
	}
	return challenge, nil
}

// truncate shortens s to at most n bytes, not splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
