package app

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/callgw/callgw/internal/turncred"
	"github.com/callgw/callgw/media"
)

// Config is everything the binary can be told, by flag or CALLGW_* variable
// (a flag wins over the variable).
type Config struct {
	Addr                string          // CALLGW_ADDR: HTTP listen address
	PublicURL           string          // CALLGW_PUBLIC_URL: how agents reach the HTTP server (links printed in demo mode)
	RedisURL            string          // CALLGW_REDIS_URL: redis:// or rediss://; empty = embedded in-process store (demo)
	RedisAddrs          []string        // CALLGW_REDIS_ADDRS: Sentinel or Cluster seed addresses
	RedisMaster         string          // CALLGW_REDIS_SENTINEL_MASTER: Sentinel master name
	RedisCluster        bool            // CALLGW_REDIS_CLUSTER: treat CALLGW_REDIS_ADDRS as a Cluster
	GraphURL            string          // CALLGW_GRAPH_URL: Graph API base (default https://graph.facebook.com)
	GraphVersion        string          // CALLGW_GRAPH_VERSION (default v23.0)
	AccessToken         string          // CALLGW_ACCESS_TOKEN: Meta system-user token
	AppSecret           string          // CALLGW_APP_SECRET: verifies webhook signatures
	VerifyToken         string          // CALLGW_VERIFY_TOKEN: webhook subscription check
	PhoneNumberID       string          // CALLGW_PHONE_NUMBER_ID: the business number's Graph id
	TokenSecret         string          // CALLGW_TOKEN_SECRET: signs agent tokens (>= 16 bytes)
	APIKeys             []string        // CALLGW_API_KEYS: bearer keys for /api/v1 ("key" = admin, or "key:supervisor")
	PublicIPs           []string        // CALLGW_PUBLIC_IP: 1:1 NAT address(es) advertised to WhatsApp and agents
	UDPPort             int             // CALLGW_UDP_PORT: one UDP port for all calls (ICE UDP mux)
	UDPPortMin          uint16          // CALLGW_UDP_PORTS "min-max": port range when no single port
	UDPPortMax          uint16          //
	ICEServers          string          // CALLGW_ICE_SERVERS: JSON array of RTCIceServer for agent browsers
	TURNSecret          string          // CALLGW_TURN_SECRET: coturn static-auth-secret; agents get time-limited TURN credentials
	TURNURLs            []string        // CALLGW_TURN_URLS: turn:/turns: URLs the credentials are for
	TURNTTL             time.Duration   // CALLGW_TURN_TTL: validity of TURN credentials (default 24h)
	RateCard            string          // CALLGW_RATE_CARD: rate card JSON file (default: the shipped sample)
	BillingTZ           string          // CALLGW_BILLING_TIMEZONE: IANA zone of billing months and days (the WABA's; default UTC)
	WABAID              string          // CALLGW_WABA_ID: the WhatsApp Business Account; set = daily reconciliation with Meta's analytics
	ConfigFile          string          // CALLGW_CONFIG: numbers and teams (YAML, config/README.md); the numbers besides CALLGW_PHONE_NUMBER_ID are served too
	RingTimeout         time.Duration   // CALLGW_RING_TIMEOUT (default 25s)
	RingCeiling         time.Duration   // CALLGW_RING_CEILING: an outbound call not picked up is ended after this (default 60s)
	AgentGrace          time.Duration   // CALLGW_AGENT_GRACE (default 20s)
	MediaTimeout        time.Duration   // CALLGW_MEDIA_TIMEOUT: mid-call, no media from WhatsApp this long ends the call (default 35s, Meta's is 30 s)
	MediaStartTimeout   time.Duration   // CALLGW_MEDIA_START_TIMEOUT: no media at all this long after answer ends the call (default 25s, Meta's is 20 s)
	SilenceBeforeAccept bool            // CALLGW_SILENCE_BEFORE_ACCEPT: send silence to WhatsApp while agents ring (default off: Meta's client takes the first packet as "answered")
	DrainTimeout        time.Duration   // CALLGW_DRAIN_TIMEOUT (default 30s)
	LeaseTTL            time.Duration   // CALLGW_LEASE_TTL: call ownership lease; a dead instance's calls end after it (default 15s)
	PermissionTTL       time.Duration   // CALLGW_PERMISSION_TTL: validity of a temporary permission (default 168h)
	CallbackPerm        bool            // CALLGW_CALLBACK_PERMISSION: a user who calls grants callback permission
	MaskNumbers         bool            // CALLGW_MASK_NUMBERS (default true)
	PermissionTemplate  string          // CALLGW_PERMISSION_TEMPLATE: name:language of the approved call-permission template sent outside the 24 h window
	LiveCacheTTL        time.Duration   // CALLGW_PERMISSION_CACHE_TTL: how long Meta's live call_permissions answer is reused (default 3s)
	InstanceID          string          // CALLGW_INSTANCE_ID (default hostname-pid)
	LogLevel            string          // CALLGW_LOG_LEVEL: debug|info|warn|error
	LogFormat           string          // CALLGW_LOG_FORMAT: json|text (default json)
	MediaLoopback       bool            // CALLGW_MEDIA_LOOPBACK: media on 127.0.0.1 only (demo default)
	Rec                 RecordingConfig // CALLGW_RECORDING*, CALLGW_DATA_DIR, CALLGW_S3_*: recording storage and the env number's policy (recording_config.go)

	// Demo is true when no Graph API is configured: the built-in Cloud API
	// simulator plays Meta.
	Demo bool

	// MediaPath is CALLGW_MEDIA_PATH: "fast" (the default; Pion's path with
	// CALLGW_UDP_PORTS) or "pion" (every packet through Pion, the old path).
	MediaPath media.PacketPath
}

// LoadConfig reads args (without the program name) over the environment.
func LoadConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("callgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var apiKeys, publicIPs, udpPorts, redisAddrs, turnURLs, mediaPath string
	var ee envErrs
	envInt, envDur := ee.envInt, ee.envDur
	fs.StringVar(&c.Addr, "addr", env("CALLGW_ADDR", ":8080"), "HTTP listen address (CALLGW_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", env("CALLGW_PUBLIC_URL", ""), "base URL agents use to reach callgw (CALLGW_PUBLIC_URL)")
	fs.StringVar(&c.RedisURL, "redis-url", env("CALLGW_REDIS_URL", ""), "Redis URL; empty = embedded in-process store, not durable (CALLGW_REDIS_URL)")
	fs.StringVar(&redisAddrs, "redis-addrs", env("CALLGW_REDIS_ADDRS", ""), "comma-separated Sentinel or Cluster addresses (CALLGW_REDIS_ADDRS)")
	fs.StringVar(&c.RedisMaster, "redis-sentinel-master", env("CALLGW_REDIS_SENTINEL_MASTER", ""), "Sentinel master name (CALLGW_REDIS_SENTINEL_MASTER)")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", env("CALLGW_REDIS_CLUSTER", "") == "true", "Redis Cluster (CALLGW_REDIS_CLUSTER)")
	fs.StringVar(&c.GraphURL, "graph-url", env("CALLGW_GRAPH_URL", ""), "Graph API base URL (CALLGW_GRAPH_URL)")
	fs.StringVar(&c.GraphVersion, "graph-version", env("CALLGW_GRAPH_VERSION", "v23.0"), "Graph API version (CALLGW_GRAPH_VERSION)")
	fs.StringVar(&c.AccessToken, "access-token", env("CALLGW_ACCESS_TOKEN", ""), "Meta access token (CALLGW_ACCESS_TOKEN)")
	fs.StringVar(&c.AppSecret, "app-secret", env("CALLGW_APP_SECRET", ""), "Meta app secret (CALLGW_APP_SECRET)")
	fs.StringVar(&c.VerifyToken, "verify-token", env("CALLGW_VERIFY_TOKEN", ""), "webhook verify token (CALLGW_VERIFY_TOKEN)")
	fs.StringVar(&c.PhoneNumberID, "phone-number-id", env("CALLGW_PHONE_NUMBER_ID", ""), "business phone number id (CALLGW_PHONE_NUMBER_ID)")
	fs.StringVar(&c.TokenSecret, "token-secret", env("CALLGW_TOKEN_SECRET", ""), "agent token signing secret (CALLGW_TOKEN_SECRET)")
	fs.StringVar(&apiKeys, "api-keys", env("CALLGW_API_KEYS", ""), "comma-separated API keys, key or key:role (CALLGW_API_KEYS)")
	fs.StringVar(&publicIPs, "public-ip", env("CALLGW_PUBLIC_IP", ""), "public IP(s) for 1:1 NAT (CALLGW_PUBLIC_IP)")
	fs.IntVar(&c.UDPPort, "udp-port", envInt(getenv, "CALLGW_UDP_PORT", 0), "single UDP port for all media (CALLGW_UDP_PORT)")
	fs.StringVar(&udpPorts, "udp-ports", env("CALLGW_UDP_PORTS", ""), "UDP port range min-max (CALLGW_UDP_PORTS)")
	fs.StringVar(&mediaPath, "media-path", env("CALLGW_MEDIA_PATH", "default"), "media packet path: fast, pion or default (CALLGW_MEDIA_PATH)")
	fs.StringVar(&c.ICEServers, "ice-servers", env("CALLGW_ICE_SERVERS", ""), "JSON array of ICE servers for agent browsers (CALLGW_ICE_SERVERS)")
	fs.StringVar(&c.TURNSecret, "turn-secret", env("CALLGW_TURN_SECRET", ""), "TURN REST API shared secret, coturn static-auth-secret (CALLGW_TURN_SECRET)")
	fs.StringVar(&turnURLs, "turn-urls", env("CALLGW_TURN_URLS", ""), "comma-separated turn:/turns: URLs for the TURN credentials (CALLGW_TURN_URLS)")
	fs.DurationVar(&c.TURNTTL, "turn-ttl", envDur(getenv, "CALLGW_TURN_TTL", turncred.DefaultTTL), "validity of agents' TURN credentials (CALLGW_TURN_TTL)")
	fs.StringVar(&c.RateCard, "rate-card", env("CALLGW_RATE_CARD", ""), "rate card JSON file (CALLGW_RATE_CARD)")
	fs.StringVar(&c.BillingTZ, "billing-timezone", env("CALLGW_BILLING_TIMEZONE", "UTC"), "IANA time zone of billing months, e.g. Asia/Kolkata (CALLGW_BILLING_TIMEZONE)")
	fs.DurationVar(&c.RingCeiling, "ring-ceiling", envDur(getenv, "CALLGW_RING_CEILING", 60*time.Second), "end an outbound call the user has not picked up after this; Meta's own limit is undocumented (CALLGW_RING_CEILING)")
	fs.DurationVar(&c.RingTimeout, "ring-timeout", envDur(getenv, "CALLGW_RING_TIMEOUT", 25*time.Second), "ring timeout (CALLGW_RING_TIMEOUT)")
	fs.DurationVar(&c.AgentGrace, "agent-grace", envDur(getenv, "CALLGW_AGENT_GRACE", 20*time.Second), "agent leg grace period (CALLGW_AGENT_GRACE)")
	fs.DurationVar(&c.MediaTimeout, "media-timeout", envDur(getenv, "CALLGW_MEDIA_TIMEOUT", 35*time.Second), "mid-call: end a call without media from WhatsApp for this long; just above Meta's 30 s (CALLGW_MEDIA_TIMEOUT)")
	fs.DurationVar(&c.MediaStartTimeout, "media-start-timeout", envDur(getenv, "CALLGW_MEDIA_START_TIMEOUT", 25*time.Second), "after answer: end a call with no media at all from WhatsApp for this long; just above Meta's 20 s (CALLGW_MEDIA_START_TIMEOUT)")
	fs.BoolVar(&c.SilenceBeforeAccept, "silence-before-accept", env("CALLGW_SILENCE_BEFORE_ACCEPT", "false") == "true", "send silence to WhatsApp while agents ring; off by default because Meta's client treats the first media packet as answered (CALLGW_SILENCE_BEFORE_ACCEPT)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", envDur(getenv, "CALLGW_DRAIN_TIMEOUT", 30*time.Second), "how long live calls may continue after SIGTERM (CALLGW_DRAIN_TIMEOUT)")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", envDur(getenv, "CALLGW_LEASE_TTL", 15*time.Second), "call ownership lease (CALLGW_LEASE_TTL)")
	fs.DurationVar(&c.PermissionTTL, "permission-ttl", envDur(getenv, "CALLGW_PERMISSION_TTL", 168*time.Hour), "validity of a temporary call permission (CALLGW_PERMISSION_TTL)")
	fs.BoolVar(&c.CallbackPerm, "callback-permission", env("CALLGW_CALLBACK_PERMISSION", "") == "true", "users who call grant callback permission (CALLGW_CALLBACK_PERMISSION)")
	fs.StringVar(&c.ConfigFile, "config", env("CALLGW_CONFIG", ""), "numbers and teams file (YAML; config/README.md): every number in it is served, each through its own Graph client and token (CALLGW_CONFIG)")
	fs.StringVar(&c.WABAID, "waba-id", env("CALLGW_WABA_ID", ""), "WhatsApp Business Account id: enables the daily reconciliation with Meta's call_analytics and pricing_analytics (CALLGW_WABA_ID)")
	fs.StringVar(&c.PermissionTemplate, "permission-template", env("CALLGW_PERMISSION_TEMPLATE", ""), "name:language of the approved MARKETING or UTILITY template with a call_permission_request component, sent outside the 24 h customer service window (CALLGW_PERMISSION_TEMPLATE)")
	fs.DurationVar(&c.LiveCacheTTL, "permission-cache-ttl", envDur(getenv, "CALLGW_PERMISSION_CACHE_TTL", 3*time.Second), "reuse of Meta's live call_permissions answer; Meta allows 5 requests/s per number (CALLGW_PERMISSION_CACHE_TTL)")
	fs.BoolVar(&c.MaskNumbers, "mask-numbers", env("CALLGW_MASK_NUMBERS", "true") != "false", "mask user numbers shown to agents (CALLGW_MASK_NUMBERS)")
	fs.StringVar(&c.InstanceID, "instance-id", env("CALLGW_INSTANCE_ID", ""), "instance id (CALLGW_INSTANCE_ID)")
	fs.StringVar(&c.LogLevel, "log-level", env("CALLGW_LOG_LEVEL", "info"), "debug|info|warn|error (CALLGW_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("CALLGW_LOG_FORMAT", "json"), "json|text (CALLGW_LOG_FORMAT)")
	c.Rec.flags(fs, env, envInt)
	loop := env("CALLGW_MEDIA_LOOPBACK", "")
	fs.BoolVar(&c.MediaLoopback, "media-loopback", loop == "true", "media on 127.0.0.1 only (CALLGW_MEDIA_LOOPBACK; default on in demo mode)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if len(ee) > 0 {
		return c, errors.Join(ee...)
	}
	c.APIKeys = splitList(apiKeys)
	c.PublicIPs = splitList(publicIPs)
	c.RedisAddrs = splitList(redisAddrs)
	c.TURNURLs = splitList(turnURLs)
	var err error
	if c.MediaPath, err = media.ParsePacketPath(mediaPath); err != nil {
		return c, fmt.Errorf("CALLGW_MEDIA_PATH: %w", err)
	}
	if udpPorts != "" {
		lo, hi, ok := strings.Cut(udpPorts, "-")
		a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if !ok || err1 != nil || err2 != nil || a == 0 || a > b {
			return c, fmt.Errorf("CALLGW_UDP_PORTS must be min-max, e.g. 40000-40999, got %q", udpPorts)
		}
		c.UDPPortMin, c.UDPPortMax = uint16(a), uint16(b)
	}
	c.Demo = c.GraphURL == "" && c.AccessToken == ""
	if c.Demo && loop == "" {
		c.MediaLoopback = true
	}
	if c.InstanceID == "" {
		h, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	return c, c.Validate()
}

// Validate checks the settings, with a clear message for each mistake.
func (c Config) Validate() error {
	var errs []error
	if !c.Demo {
		for _, req := range []struct{ v, name string }{
			{c.AccessToken, "CALLGW_ACCESS_TOKEN"}, {c.AppSecret, "CALLGW_APP_SECRET"},
			{c.VerifyToken, "CALLGW_VERIFY_TOKEN"}, {c.PhoneNumberID, "CALLGW_PHONE_NUMBER_ID"},
			{c.TokenSecret, "CALLGW_TOKEN_SECRET"},
		} {
			if req.v == "" {
				errs = append(errs, fmt.Errorf("%s is required when talking to the real Graph API", req.name))
			}
		}
	}
	if c.TokenSecret != "" && len(c.TokenSecret) < 16 {
		errs = append(errs, errors.New("CALLGW_TOKEN_SECRET must be at least 16 characters"))
	}
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		errs = append(errs, fmt.Errorf("CALLGW_UDP_PORT %d is not a port", c.UDPPort))
	}
	if c.UDPPort > 0 && c.UDPPortMin > 0 {
		errs = append(errs, errors.New("set CALLGW_UDP_PORT or CALLGW_UDP_PORTS, not both"))
	}
	if c.ICEServers != "" {
		if _, err := c.ParseICEServers(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TURNSecret != "" || len(c.TURNURLs) > 0 {
		if _, err := c.TURNIssuer(); err != nil {
			errs = append(errs, fmt.Errorf("CALLGW_TURN_SECRET/CALLGW_TURN_URLS/CALLGW_TURN_TTL: %w", err))
		}
	}
	if c.RingTimeout < time.Second || c.RingTimeout > 30*time.Second {
		errs = append(errs, errors.New("CALLGW_RING_TIMEOUT must be between 1s and 30s (Meta needs an accept within about 30 s)"))
	}
	if c.LeaseTTL < time.Second || c.LeaseTTL > time.Minute {
		errs = append(errs, errors.New("CALLGW_LEASE_TTL must be between 1s and 1m"))
	}
	if c.DrainTimeout < 0 || c.AgentGrace < 0 || c.MediaTimeout < 0 || c.MediaStartTimeout < 0 || c.PermissionTTL < 0 {
		errs = append(errs, errors.New("CALLGW_DRAIN_TIMEOUT, CALLGW_AGENT_GRACE, CALLGW_MEDIA_TIMEOUT and CALLGW_PERMISSION_TTL must be valid durations (e.g. 30s)"))
	}
	if c.RedisMaster != "" && len(c.RedisAddrs) == 0 {
		errs = append(errs, errors.New("CALLGW_REDIS_SENTINEL_MASTER needs CALLGW_REDIS_ADDRS"))
	}
	if c.RedisCluster && len(c.RedisAddrs) == 0 {
		errs = append(errs, errors.New("CALLGW_REDIS_CLUSTER needs CALLGW_REDIS_ADDRS"))
	}
	if _, err := c.BillingLocation(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Rec.validate()...)
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	for _, k := range c.APIKeys {
		key, role, _ := strings.Cut(k, ":")
		if len(key) < 16 {
			errs = append(errs, errors.New("every CALLGW_API_KEYS key must be at least 16 characters"))
		}
		if role != "" && role != "supervisor" && role != "admin" {
			errs = append(errs, fmt.Errorf("API key role %q must be supervisor or admin (agents use agent tokens)", role))
		}
	}
	return errors.Join(errs...)
}

// ICEServer is one RTCIceServer handed to browsers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ParseICEServers reads CALLGW_ICE_SERVERS.
func (c Config) ParseICEServers() ([]ICEServer, error) {
	if c.ICEServers == "" {
		return nil, nil
	}
	var out []ICEServer
	if err := json.Unmarshal([]byte(c.ICEServers), &out); err != nil {
		return nil, fmt.Errorf("CALLGW_ICE_SERVERS must be a JSON array of {urls, username, credential}: %w", err)
	}
	for _, s := range out {
		if len(s.URLs) == 0 {
			return nil, errors.New("CALLGW_ICE_SERVERS: every server needs urls")
		}
		for _, u := range s.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				return nil, fmt.Errorf("CALLGW_ICE_SERVERS: %q is not a stun:, turn: or turns: URL", u)
			}
		}
	}
	return out, nil
}

// BillingLocation is CALLGW_BILLING_TIMEZONE as a location (UTC when
// unset): billing months, volume tiers and reconciliation days are cut in
// it. Pass it as billing.Config.Location.
func (c Config) BillingLocation() (*time.Location, error) {
	if c.BillingTZ == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(c.BillingTZ)
	if err != nil {
		return nil, fmt.Errorf("CALLGW_BILLING_TIMEZONE %q is not an IANA time zone (e.g. UTC, Asia/Kolkata): %w", c.BillingTZ, err)
	}
	return loc, nil
}

// TURNIssuer builds the issuer of agents' TURN credentials; nil, nil when
// CALLGW_TURN_SECRET is not set.
func (c Config) TURNIssuer() (*turncred.Issuer, error) {
	if c.TURNSecret == "" && len(c.TURNURLs) == 0 {
		return nil, nil
	}
	return turncred.New(turncred.Config{Secret: c.TURNSecret, URLs: c.TURNURLs, TTL: c.TURNTTL})
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("CALLGW_LOG_LEVEL %q must be debug, info, warn or error", s)
	}
	return l, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// envErrs collects variables that do not parse, reported by LoadConfig with
// their value.
type envErrs []error

func (e *envErrs) envInt(getenv func(string) string, name string, def int) int {
	if v := getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			*e = append(*e, fmt.Errorf("%s=%q is not a whole number", name, v))
			return def
		}
		return n
	}
	return def
}

func (e *envErrs) envDur(getenv func(string) string, name string, def time.Duration) time.Duration {
	if v := getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			*e = append(*e, fmt.Errorf("%s=%q is not a duration (e.g. 30s, 5m)", name, v))
			return def
		}
		return d
	}
	return def
}
