package agents_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgw/callgw/signaling/agents"
)

var (
	testSecret = []byte("0123456789abcdef-test-secret")
	t0         = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
)

func TestIssueAndVerifyToken(t *testing.T) {
	for _, role := range []agents.Role{agents.RoleAgent, agents.RoleSupervisor} {
		t.Run(string(role), func(t *testing.T) {
			tok, err := agents.IssueToken(testSecret, "alice", role, time.Hour, t0)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("not a JWT: %q", tok)
			}
			c, err := agents.VerifyToken(testSecret, tok, t0.Add(59*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "alice" || c.Role != role || c.Issuer != "callgw" || !c.ExpiresAt.Time.Equal(t0.Add(time.Hour)) {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

func TestIssueTokenRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret []byte
		agent  string
		role   agents.Role
		want   string
	}{
		{"short secret", []byte("short"), "a", agents.RoleAgent, "at least 16 bytes"},
		{"empty agent", testSecret, "", agents.RoleAgent, "agent id"},
		{"agent over 64", testSecret, strings.Repeat("a", 65), agents.RoleAgent, "agent id"},
		{"admin is not an agent role", testSecret, "a", "admin", "unknown role"},
		{"empty role", testSecret, "a", "", "unknown role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := agents.IssueToken(tc.secret, tc.agent, tc.role, time.Hour, t0)
			if err == nil || !strings.Contains(err.Error(), tc.want) || tok != "" {
				t.Fatalf("token %q err %v, want %q", tok, err, tc.want)
			}
		})
	}
}

func sign(t *testing.T, m jwt.SigningMethod, claims jwt.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyTokenRejects(t *testing.T) {
	good, err := agents.IssueToken(testSecret, "alice", agents.RoleAgent, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "role": "agent", "iss": "callgw", "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix()}
		if mut != nil {
			mut(c)
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		token string
		now   time.Time
	}{
		{"expired", good, t0.Add(time.Hour + time.Second)},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, claims(nil), []byte("another-secret-of-16+bytes")), t0},
		{"alg none", sign(t, jwt.SigningMethodNone, claims(nil), jwt.UnsafeAllowNoneSignatureType), t0},
		{"RS256", sign(t, jwt.SigningMethodRS256, claims(nil), rsaKey), t0},
		{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, claims(nil), testSecret), t0},
		{"missing role", sign(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { delete(c, "role") }), testSecret), t0},
		{"admin role", sign(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["role"] = "admin" }), testSecret), t0},
		{"missing subject", sign(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { delete(c, "sub") }), testSecret), t0},
		{"missing expiry", sign(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { delete(c, "exp") }), testSecret), t0},
		{"other issuer", sign(t, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["iss"] = "evil" }), testSecret), t0},
		{"tampered payload", tamper(t, good), t0},
		{"garbage", "not.a.token", t0},
		{"empty", "", t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := agents.VerifyToken(testSecret, tc.token, tc.now)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, agents.ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			if c != nil {
				t.Fatalf("claims returned with an error: %+v", c)
			}
		})
	}
}

// tamper swaps the payload of a signed token for one naming another agent.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	other, err := agents.IssueToken([]byte("yet-another-secret-123"), "mallory", agents.RoleSupervisor, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
}
