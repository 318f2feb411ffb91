package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

var testSecret = []byte("8f2b6c1d0e9a4b7c3d5e6f708192a3b4")

// metaSignature computes the header independently of Sign.
func metaSignature(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	body := readFixture(t, "connect_offer.json")
	good := metaSignature(testSecret, body)
	tampered := append([]byte{}, body...)
	tampered[len(tampered)-3] ^= 1
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   error
	}{
		{"valid", testSecret, body, good, nil},
		{"valid upper-case hex and prefix", testSecret, body, "SHA256=" + strings.ToUpper(good[7:]), nil},
		{"valid with surrounding spaces", testSecret, body, "  " + good + " ", nil},
		{"empty body signed", testSecret, []byte{}, metaSignature(testSecret, nil), nil},
		{"missing header", testSecret, body, "", ErrMissingSignature},
		{"blank header", testSecret, body, "   ", ErrMissingSignature},
		{"sha1 header", testSecret, body, "sha1=" + good[7:47], ErrBadSignature},
		{"no prefix", testSecret, body, good[7:], ErrBadSignature},
		{"short hex", testSecret, body, good[:len(good)-2], ErrBadSignature},
		{"long hex", testSecret, body, good + "00", ErrBadSignature},
		{"not hex", testSecret, body, "sha256=" + strings.Repeat("zz", 32), ErrBadSignature},
		{"wrong secret", []byte("another-secret"), body, good, ErrBadSignature},
		{"tampered body", testSecret, tampered, good, ErrBadSignature},
		{"signature of other body", testSecret, body, metaSignature(testSecret, []byte("{}")), ErrBadSignature},
		{"empty secret", nil, body, metaSignature(nil, body), ErrNoAppSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.body, tc.header)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignMatchesMeta(t *testing.T) {
	body := readFixture(t, "terminate_completed.json")
	if got, want := Sign(testSecret, body), metaSignature(testSecret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerifyChallenge(t *testing.T) {
	q := func(mode, token, challenge string) url.Values {
		v := url.Values{}
		if mode != "" {
			v.Set("hub.mode", mode)
		}
		if token != "" {
			v.Set("hub.verify_token", token)
		}
		if challenge != "" {
			v.Set("hub.challenge", challenge)
		}
		return v
	}
	tests := []struct {
		name  string
		q     url.Values
		token string
		want  string
		errIs error
	}{
		{"valid", q("subscribe", "s3cret-token", "1158201444"), "s3cret-token", "1158201444", nil},
		{"token mismatch", q("subscribe", "guess", "1158201444"), "s3cret-token", "", ErrBadVerifyToken},
		{"token missing", q("subscribe", "", "1158201444"), "s3cret-token", "", ErrBadVerifyToken},
		{"no token configured", q("subscribe", "", "1158201444"), "", "", ErrBadVerifyToken},
		{"wrong mode", q("unsubscribe", "s3cret-token", "1158201444"), "s3cret-token", "", ErrBadChallenge},
		{"no mode", q("", "s3cret-token", "1158201444"), "s3cret-token", "", ErrBadChallenge},
		{"no challenge", q("subscribe", "s3cret-token", ""), "s3cret-token", "", ErrBadChallenge},
		{"markup challenge", q("subscribe", "s3cret-token", "<script>"), "s3cret-token", "", ErrBadChallenge},
		{"long challenge", q("subscribe", "s3cret-token", strings.Repeat("9", 257)), "s3cret-token", "", ErrBadChallenge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyChallenge(tc.q, tc.token)
			if !errors.Is(err, tc.errIs) || (tc.errIs == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.errIs)
			}
			if got != tc.want {
				t.Errorf("challenge = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…"},
		{"ééé", 3, "é…"}, // é is 2 bytes: cutting at 3 would split the second one
		{"ééé", 4, "éé…"},
	}
	for _, tc := range tests {
		if got := truncate(tc.in, tc.n); got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
