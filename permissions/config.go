package permissions

import (
	"fmt"
	"strings"
	"time"
)

// Defaults for Config. Meta changes these over time; its call_permissions
// endpoint reports the live values.
const (
	DefaultRequestsPer24h       = 1
	DefaultRequestsPer7d        = 2
	DefaultTemporaryValidity    = 7 * 24 * time.Hour
	DefaultConnectedCallsPer24h = 100
	DefaultUnansweredReminder   = 2
	DefaultUnansweredRevoke     = 4
	DefaultKeyPrefix            = "callgw:perm:"
	DefaultEventRetention       = 8 * 24 * time.Hour
)

// Windows of the rolling limits. The limits' sizes are settings; the windows
// are Meta's definitions (PT24H and P7D in call_permissions).
const (
	requestShortWindow = 24 * time.Hour
	requestLongWindow  = 7 * 24 * time.Hour
	callWindow         = 24 * time.Hour
)

// Config holds the tracker's settings. A zero field takes its default, so the
// zero Config is valid and means Meta's current rules; negative values are
// rejected by Validate.
type Config struct {
	// RequestsPer24h is how many permission requests a pair may receive in a
	// rolling 24 h. Default 1.
	RequestsPer24h int
	// RequestsPer7d is how many permission requests a pair may receive in a
	// rolling 7 days. Default 2. Must be >= RequestsPer24h.
	RequestsPer7d int
	// TemporaryValidity is how long a temporary grant lasts when Meta's reply
	// carries no expiration_timestamp, and how long a callback grant lasts.
	// Default 168h (7 days); the 2025 seed material says 72h.
	TemporaryValidity time.Duration
	// ConnectedCallsPer24h is how many business-initiated calls may connect
	// per pair in a rolling 24 h. Default 100 (it has been 5 and 10).
	ConnectedCallsPer24h int
	// UnansweredReminder is the unanswered-call streak at which WhatsApp
	// reminds the user (reported as Decision.Reminder). Default 2.
	UnansweredReminder int
	// UnansweredRevoke is the unanswered-call streak at which the permission
	// is revoked. Default 4. Must be >= UnansweredReminder.
	UnansweredRevoke int
	// CallbackPermission mirrors Meta's callback_permission_status: when
	// true, a user who calls the business grants temporary permission.
	// Default false.
	CallbackPermission bool
	// KeyPrefix starts every Redis key. Default "callgw:perm:". Must not
	// contain '{' or '}' (the pair's hash tag follows it).
	KeyPrefix string
	// EventRetention is how long event ids (request, call, grant and revoke
	// ids) are remembered for idempotency, and the TTL of an idle pair's
	// keys. Default 8 days (Meta retries webhooks for up to 7 days). Must be
	// at least 7 days so the request window is never cut short.
	EventRetention time.Duration
}

// DefaultConfig returns the Config with every default filled in.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.RequestsPer24h == 0 {
		c.RequestsPer24h = DefaultRequestsPer24h
	}
	if c.RequestsPer7d == 0 {
		c.RequestsPer7d = DefaultRequestsPer7d
	}
	if c.TemporaryValidity == 0 {
		c.TemporaryValidity = DefaultTemporaryValidity
	}
	if c.ConnectedCallsPer24h == 0 {
		c.ConnectedCallsPer24h = DefaultConnectedCallsPer24h
	}
	if c.UnansweredReminder == 0 {
		c.UnansweredReminder = DefaultUnansweredReminder
	}
	if c.UnansweredRevoke == 0 {
		c.UnansweredRevoke = DefaultUnansweredRevoke
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.EventRetention == 0 {
		c.EventRetention = DefaultEventRetention
	}
	return c
}

// Validate reports the first setting out of range (after defaults are
// applied to zero fields), wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	d := c.withDefaults()
	switch {
	case d.RequestsPer24h < 1:
		return fmt.Errorf("%w: RequestsPer24h %d must be >= 1", ErrInvalidConfig, c.RequestsPer24h)
	case d.RequestsPer7d < d.RequestsPer24h:
		return fmt.Errorf("%w: RequestsPer7d %d must be >= RequestsPer24h %d", ErrInvalidConfig, d.RequestsPer7d, d.RequestsPer24h)
	case d.TemporaryValidity < time.Minute:
		return fmt.Errorf("%w: TemporaryValidity %s must be >= 1m", ErrInvalidConfig, c.TemporaryValidity)
	case d.ConnectedCallsPer24h < 1:
		return fmt.Errorf("%w: ConnectedCallsPer24h %d must be >= 1", ErrInvalidConfig, c.ConnectedCallsPer24h)
	case d.UnansweredReminder < 1:
		return fmt.Errorf("%w: UnansweredReminder %d must be >= 1", ErrInvalidConfig, c.UnansweredReminder)
	case d.UnansweredRevoke < d.UnansweredReminder:
		return fmt.Errorf("%w: UnansweredRevoke %d must be >= UnansweredReminder %d", ErrInvalidConfig, d.UnansweredRevoke, d.UnansweredReminder)
	case strings.ContainsAny(d.KeyPrefix, "{}"):
		return fmt.Errorf("%w: KeyPrefix %q must not contain '{' or '}'", ErrInvalidConfig, c.KeyPrefix)
	case d.EventRetention < requestLongWindow:
		return fmt.Errorf("%w: EventRetention %s must be >= %s", ErrInvalidConfig, c.EventRetention, requestLongWindow)
	}
	return nil
}
