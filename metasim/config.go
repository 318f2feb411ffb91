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

	// AcceptTimeout is how long Meta waits for accept after the connect webhook
	// (default 45 s; Meta says 30–60 s; shorter values are allowed for tests).
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

	// Numbers are further business phone numbers served besides the primary
	// one (PhoneNumberID/DisplayPhoneNumber/WABAID/AccessToken).
	Numbers []Number
	// PrimaryNoBIC: business-initiated calling is unavailable on the primary
	// number (connect → 138013, subcode 2593139).
	PrimaryNoBIC bool
	// Adversary switches on Meta's legal-but-nasty delivery behaviours
	// (batching, reordering, duplicates, retries, BSUID-only users, type drift).
	// Change it at runtime with Sim.SetAdversary.
	Adversary Adversary
	// Pricing chooses the pricing object reported in message statuses.
	Pricing Pricing
	// CallRates is the BIC rate card used by call_analytics (micros per minute by callee country).
	CallRates RateCard
	// Templates are message templates approved from the start (more can be
	// created with POST /{WABA_ID}/message_templates).
	Templates []Template
	// PermissionChecksPerSecond bounds GET call_permissions per number per
	// 1-second window (default 5; -1 disables) → HTTP 429, code 613.
	PermissionChecksPerSecond int
	// RecordingDelay is how long after terminate the recording/transcription
	// webhooks follow (default 0: right after).
	RecordingDelay time.Duration
	// MediaURLValidity is how long a media download URL works (default 5 min, Clock time).
	MediaURLValidity time.Duration
	// AssumeWindowOpen treats every user as inside the 24 h customer service
	// window (free-form permission requests always allowed). Not Meta's
	// behaviour: a convenience for demos and for tests that predate the window.
	AssumeWindowOpen bool
	// GraphBaseURL is the absolute URL the Graph handler is served at (for
	// media download URLs). Default: learned from the first Graph request.
	GraphBaseURL string
}

// Number is one business phone number the simulator serves.
type Number struct {
	PhoneNumberID      string // Graph id (required)
	DisplayPhoneNumber string // E.164 digits without '+' (required)
	WABAID             string // WhatsApp Business Account (default Config.WABAID); another WABA = another webhook entry
	AccessToken        string // token accepted for this number (default Config.AccessToken)
	// NoBIC: business-initiated calling is not available for this number
	// (its country, e.g. US/CA/TR/EG/VN/NG, or eligibility): connect → 138013.
	NoBIC bool
}

// Pricing is what the simulated Meta reports in message statuses'
// pricing objects. Empty fields follow the reference: from 2026-10-01 (by
// Clock) service messages and utility templates inside the customer service
// window are "regular" (billable); before that they are
// "free_customer_service".
type Pricing struct {
	ServiceType         string           // pricing.type of free-form messages in the window
	UtilityInWindowType string           // pricing.type of utility templates in the window
	MessageRates        map[string]int64 // micros per delivered billable message by category (pricing_analytics)
}

// RateCard prices business-initiated calls for call_analytics: micros per
// minute by callee ISO country ("GB"), billed in 6-second pulses (a pulse
// costs PerMinute/10, fractions of a pulse rounded up).
type RateCard struct {
	PerMinute map[string]int64
	Default   int64 // countries not listed (default 10000 = 0.01 per minute; invented)
}

// Template is an approved message template.
type Template struct {
	Name     string
	Language string // e.g. "en_US"
	Category string // MARKETING, UTILITY or AUTHENTICATION
	// PermissionRequest: the template has a call_permission_request component.
	PermissionRequest bool
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
	defD(&c.AcceptTimeout, 45*time.Second)
	defI(&c.PermissionChecksPerSecond, 5)
	defD(&c.MediaURLValidity, 5*time.Minute)
	if c.CallRates.Default == 0 {
		c.CallRates.Default = 10000
	}
	c.Adversary = c.Adversary.withDefaults()
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
	for i, n := range c.Numbers {
		if n.PhoneNumberID == "" || !digitsRE.MatchString(n.DisplayPhoneNumber) {
			return bad("Numbers[%d] needs a PhoneNumberID and E.164 DisplayPhoneNumber digits", i)
		}
		if n.PhoneNumberID == c.PhoneNumberID {
			return bad("Numbers[%d] repeats the primary PhoneNumberID", i)
		}
	}
	for i, t := range c.Templates {
		if t.Name == "" || !contains([]string{"MARKETING", "UTILITY", "AUTHENTICATION"}, t.Category) {
			return bad("Templates[%d] needs a name and category MARKETING, UTILITY or AUTHENTICATION", i)
		}
		if t.PermissionRequest && t.Category == "AUTHENTICATION" {
			return bad("Templates[%d]: a call_permission_request template must be MARKETING or UTILITY", i)
		}
	}
	for _, v := range []string{c.Pricing.ServiceType, c.Pricing.UtilityInWindowType} {
		if v != "" && v != "regular" && v != "free_customer_service" && v != "free_entry_point" {
			return bad("Pricing type %q must be regular, free_customer_service or free_entry_point", v)
		}
	}
	if err := c.Adversary.validate(); err != nil {
		return bad("%v", err)
	}
	if c.WebhookRetries < -1 {
		return bad("WebhookRetries must be >= -1")
	}
	return nil
}
