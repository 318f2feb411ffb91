package metasim

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits are Meta's permission rules. Meta changes them over time, so each is
// a setting; zero values take the documented defaults.
type Limits struct {
	RequestsPer24h       int           // permission requests per user per 24 h (default 1)
	RequestsPer7d        int           // permission requests per user per 7 days (default 2)
	TemporaryValidity    time.Duration // lifetime of a temporary grant (default 168 h)
	ConnectedCallsPer24h int           // connected business-initiated calls per user per 24 h (default 100)
	UnansweredRevoke     int           // unanswered business-initiated calls in a row that revoke (default 4)
}

// Config configures a Sim. Zero values take the documented defaults.
type Config struct {
	// AppSecret keys the X-Hub-Signature-256 HMAC of every webhook. Required.
	AppSecret string
	// VerifyToken is the webhook subscription verify token (used by VerifySubscription).
	VerifyToken string
	// AccessToken is the bearer token the Graph handler accepts. Required.
	AccessToken string
	// PhoneNumberID is the business number's Graph id (default "100000000000001").
	PhoneNumberID string
	// DisplayPhoneNumber is the business number, digits only (default "15550001111").
	DisplayPhoneNumber string
	// WABAID is the WhatsApp Business Account id used as entry[].id (default "200000000000002").
	WABAID string
	// GraphVersion is the only version the Graph handler serves (default "v23.0").
	GraphVersion string
	// WebhookURL is where webhooks are POSTed (callgw's /webhooks/whatsapp). Required.
	WebhookURL string
	// HTTPClient delivers webhooks (default: a client with a 20 s timeout, like Meta's).
	HTTPClient *http.Client
	// Logger receives the simulator's logs (default: discard).
	Logger *slog.Logger
	// Clock gives Meta's notion of time for timestamps, deadlines and permission
	// windows (default time.Now). Media timers use real time.
	Clock func() time.Time
	// LoopbackOnly makes user peers gather IPv4 host candidates on 127.0.0.1 only.
	LoopbackOnly bool
	// CallbackPermission: a user who calls grants callback permission (the
	// initial value of settings calling.callback_permission_status).
	CallbackPermission bool
	// Limits are Meta's permission rules.
	Limits Limits

	// AcceptTimeout is how long Meta waits for accept after the connect webhook (default 30 s).
	AcceptTimeout time.Duration
	// RingTimeout is how long a business-initiated call rings unanswered (default 60 s).
	RingTimeout time.Duration
	// NoMediaTimeout ends an accepted call with 138021 when the business sent no
	// media since accept for this long (default 20 s).
	NoMediaTimeout time.Duration
	// MidCallNoMediaTimeout ends a call whose business media stopped for this long (default 30 s).
	MidCallNoMediaTimeout time.Duration
	// WebhookRetries is how many times a non-200 delivery is retried (default 3; -1 disables).
	WebhookRetries int
	// WebhookBackoff is the first retry delay, doubled per retry (default 200 ms).
	WebhookBackoff time.Duration
	// RecordLimit bounds the Opus payloads kept per call (default 3000 = 60 s of 20 ms frames).
	RecordLimit int
	// MaxEndedCalls bounds how many ended calls are kept for inspection (default 200).
	MaxEndedCalls int
	// Registerer registers the simulator's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

var graphVersionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defD := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defI := func(i *int, v int) {
		if *i == 0 {
			*i = v
		}
	}
	def(&c.PhoneNumberID, "100000000000001")
	def(&c.DisplayPhoneNumber, "15550001111")
	def(&c.WABAID, "200000000000002")
	def(&c.GraphVersion, "v23.0")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	defI(&c.Limits.RequestsPer24h, 1)
	defI(&c.Limits.RequestsPer7d, 2)
	defD(&c.Limits.TemporaryValidity, 7*24*time.Hour)
	defI(&c.Limits.ConnectedCallsPer24h, 100)
	defI(&c.Limits.UnansweredRevoke, 4)
	defD(&c.AcceptTimeout, 30*time.Second)
	defD(&c.RingTimeout, 60*time.Second)
	defD(&c.NoMediaTimeout, 20*time.Second)
	defD(&c.MidCallNoMediaTimeout, 30*time.Second)
	defI(&c.WebhookRetries, 3)
	defD(&c.WebhookBackoff, 200*time.Millisecond)
	defI(&c.RecordLimit, 3000)
	defI(&c.MaxEndedCalls, 200)
	return c
}

// Validate reports the first invalid setting (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.AppSecret == "" {
		return bad("AppSecret is required")
	}
	if c.AccessToken == "" {
		return bad("AccessToken is required")
	}
	u, err := url.Parse(c.WebhookURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("WebhookURL %q must be an absolute http(s) URL", c.WebhookURL)
	}
	if !graphVersionRE.MatchString(c.GraphVersion) {
		return bad("GraphVersion %q must look like v23.0", c.GraphVersion)
	}
	if !digitsRE.MatchString(c.DisplayPhoneNumber) {
		return bad("DisplayPhoneNumber must be E.164 digits without '+'")
	}
	for name, d := range map[string]time.Duration{
		"Limits.TemporaryValidity": c.Limits.TemporaryValidity, "AcceptTimeout": c.AcceptTimeout,
		"RingTimeout": c.RingTimeout, "NoMediaTimeout": c.NoMediaTimeout,
		"MidCallNoMediaTimeout": c.MidCallNoMediaTimeout, "WebhookBackoff": c.WebhookBackoff,
	} {
		if d < 0 {
			return bad("%s must not be negative", name)
		}
	}
	for name, n := range map[string]int{
		"Limits.RequestsPer24h": c.Limits.RequestsPer24h, "Limits.RequestsPer7d": c.Limits.RequestsPer7d,
		"Limits.ConnectedCallsPer24h": c.Limits.ConnectedCallsPer24h, "Limits.UnansweredRevoke": c.Limits.UnansweredRevoke,
		"RecordLimit": c.RecordLimit, "MaxEndedCalls": c.MaxEndedCalls,
	} {
		if n < 0 {
			return bad("%s must not be negative", name)
		}
	}
	if c.WebhookRetries < -1 {
		return bad("WebhookRetries must be >= -1")
	}
	return nil
}
