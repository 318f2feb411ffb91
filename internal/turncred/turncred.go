package turncred

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST API scheme is HMAC-SHA1 (coturn use-auth-secret)
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by New.
const (
	DefaultTTL = 24 * time.Hour
	MinTTL     = 5 * time.Minute
)

// Config configures an Issuer.
type Config struct {
	// Secret is coturn's static-auth-secret (CALLGW_TURN_SECRET). Required.
	Secret string
	// URLs are the turn:/turns:/stun: URLs handed out with the credentials
	// (CALLGW_TURN_URLS). At least one turn: or turns: URL is required.
	URLs []string
	// TTL is how long issued credentials stay valid (CALLGW_TURN_TTL,
	// default 24h, at least 5m). A TURN allocation cannot be refreshed
	// once its credentials expired, so a call lasts at most about the
	// credentials' remaining validity: sessions get fresh credentials every
	// TTL/2 (RenewEvery), so every new call starts with at least TTL/2.
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var bad []string
	if len(c.Secret) < 16 {
		bad = append(bad, "secret must be at least 16 characters")
	}
	turn := false
	for _, u := range c.URLs {
		switch {
		case strings.HasPrefix(u, "turn:"), strings.HasPrefix(u, "turns:"):
			turn = true
		case strings.HasPrefix(u, "stun:"), strings.HasPrefix(u, "stuns:"):
		default:
			bad = append(bad, fmt.Sprintf("%q is not a turn:, turns: or stun: URL", u))
			continue
		}
		if _, err := ParseURL(u); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if !turn {
		bad = append(bad, "at least one turn: or turns: URL is needed")
	}
	if c.TTL != 0 && c.TTL < MinTTL {
		bad = append(bad, fmt.Sprintf("ttl %s is shorter than %s", c.TTL, MinTTL))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(bad, "; "))
	}
	return nil
}

// Credentials are one user's TURN credentials.
type Credentials struct {
	URLs       []string
	Username   string
	Credential string
	Expires    time.Time
}

// Issuer issues credentials. It is safe for concurrent use.
type Issuer struct {
	cfg Config
}

// New validates cfg and applies defaults.
func New(cfg Config) (*Issuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.URLs = append([]string(nil), cfg.URLs...)
	return &Issuer{cfg: cfg}, nil
}

// Issue returns credentials for user valid until now + TTL.
func (i *Issuer) Issue(user string) Credentials {
	exp := i.cfg.Now().Add(i.cfg.TTL).Truncate(time.Second)
	name := Username(exp, user)
	return Credentials{URLs: append([]string(nil), i.cfg.URLs...), Username: name,
		Credential: Sign(i.cfg.Secret, name), Expires: exp}
}

// RenewEvery is how often a long session should get fresh credentials.
func (i *Issuer) RenewEvery() time.Duration { return i.cfg.TTL / 2 }

// TTL is the validity of issued credentials.
func (i *Issuer) TTL() time.Duration { return i.cfg.TTL }

// URLs returns the configured URLs.
func (i *Issuer) URLs() []string { return append([]string(nil), i.cfg.URLs...) }

// Username is the REST API username: "<expiry-unix>:<user>". The user part
// is informative only (coturn logs it); a ':' in it is kept, coturn reads
// the timestamp up to the first separator.
func Username(expires time.Time, user string) string {
	return strconv.FormatInt(expires.Unix(), 10) + ":" + user
}

// Sign is the REST API credential for username: base64(HMAC-SHA1(secret, username)).
func Sign(secret, username string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Expiry reads the expiry back from a REST API username.
func Expiry(username string) (time.Time, error) {
	ts, _, ok := strings.Cut(username, ":")
	if !ok {
		return time.Time{}, fmt.Errorf("turncred: username %q has no expiry", username)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("turncred: username %q has no expiry", username)
	}
	return time.Unix(n, 0), nil
}

// URL is one parsed ICE server URL (RFC 7064/7065).
type URL struct {
	Scheme    string // stun, stuns, turn, turns
	Host      string
	Port      int
	Transport string // udp or tcp (turn/turns only; default udp for turn, tcp for turns)
}

// Addr is host:port.
func (u URL) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// ParseURL parses stun:host[:port] and turn(s):host[:port][?transport=udp|tcp].
func ParseURL(raw string) (URL, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return URL{}, fmt.Errorf("%q is not an ICE server URL", raw)
	}
	u := URL{Scheme: scheme}
	switch scheme {
	case "stun", "turn":
		u.Port = 3478
	case "stuns", "turns":
		u.Port = 5349
	default:
		return URL{}, fmt.Errorf("%q: scheme must be stun, stuns, turn or turns", raw)
	}
	hostport, query, _ := strings.Cut(rest, "?")
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return URL{}, fmt.Errorf("%q: %w", raw, err)
		}
		u.Transport = q.Get("transport")
		if u.Transport != "" && u.Transport != "udp" && u.Transport != "tcp" {
			return URL{}, fmt.Errorf("%q: transport must be udp or tcp", raw)
		}
		if strings.HasPrefix(scheme, "stun") && u.Transport != "" {
			return URL{}, fmt.Errorf("%q: stun URLs take no transport", raw)
		}
	}
	if u.Transport == "" && strings.HasPrefix(scheme, "turn") {
		u.Transport = "udp"
		if scheme == "turns" {
			u.Transport = "tcp"
		}
	}
	host := hostport
	if i := strings.LastIndex(hostport, ":"); i >= 0 && !strings.HasSuffix(hostport, "]") {
		p, err := strconv.Atoi(hostport[i+1:])
		if err != nil || p <= 0 || p > 65535 {
			return URL{}, fmt.Errorf("%q: bad port", raw)
		}
		host, u.Port = hostport[:i], p
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return URL{}, fmt.Errorf("%q: no host", raw)
	}
	u.Host = host
	return u, nil
}
