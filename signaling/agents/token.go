package agents

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a token allows.
type Role string

const (
	RoleAgent      Role = "agent"      // takes calls
	RoleSupervisor Role = "supervisor" // takes calls and sees everything
)

// Claims are the claims of an agent token.
type Claims struct {
	Role Role `json:"role"`
	jwt.RegisteredClaims
}

// IssueToken signs an HS256 token for agent with role, valid for ttl.
func IssueToken(secret []byte, agent string, role Role, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < 16 {
		return "", fmt.Errorf("agents: token secret must be at least 16 bytes")
	}
	if agent == "" || len(agent) > 64 {
		return "", fmt.Errorf("agents: agent id must be 1..64 characters")
	}
	if role != RoleAgent && role != RoleSupervisor {
		return "", fmt.Errorf("agents: unknown role %q", role)
	}
	c := Claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   agent,
		Issuer:    "callgw",
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// VerifyToken checks signature, algorithm and expiry and returns the claims.
func VerifyToken(secret []byte, token string, now time.Time) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("callgw"),
		jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if c.Subject == "" || (c.Role != RoleAgent && c.Role != RoleSupervisor) {
		return nil, fmt.Errorf("%w: missing subject or role", ErrBadToken)
	}
	return &c, nil
}
