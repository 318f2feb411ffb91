package billing

import (
	"fmt"
	"strings"
	"time"
)

// Config configures a Ledger. Zero values take the documented defaults.
type Config struct {
	// KeyPrefix starts every Redis key. Default "callgw:bill:". The ledger
	// appends the hash tag "{ledger}" so all its keys share one Redis
	// Cluster slot (its Lua scripts touch several keys atomically); put your
	// own tag in the prefix (e.g. "callgw:bill:{tenant1}:") to shard ledgers.
	KeyPrefix string
	// Location sets month and day boundaries for aggregates, tiers, rate
	// card versions and reconciliation days: the WABA's time zone
	// (CALLGW_BILLING_TIMEZONE). Default time.UTC.
	Location *time.Location
	// Now is the clock for Entry.RecordedAt. Default time.Now.
	Now func() time.Time
	// MessageDedupTTL is how long Conversation remembers a message id (so a
	// retried message is not charged twice). Default 35 days.
	MessageDedupTTL time.Duration
	// ScanLimit bounds how many call-log entries one Calls query examines
	// when filters are not served by an index. Default 10,000.
	ScanLimit int
	// MaxCallDuration is the longest duration billed for one call; a longer
	// one (clock skew, a bad payload) is clamped to it and flagged
	// "absurd_duration". Default 24h.
	MaxCallDuration time.Duration
}

// Defaults.
const (
	DefaultKeyPrefix       = "callgw:bill:"
	DefaultMessageDedupTTL = 35 * 24 * time.Hour
	DefaultScanLimit       = 10_000
	DefaultMaxCallDuration = 24 * time.Hour
	// DefaultCallsLimit is the page size of Calls when CallFilter.Limit is 0.
	DefaultCallsLimit = 50
	// MaxCallsLimit is the largest page Calls returns.
	MaxCallsLimit = 1000
)

func (c Config) withDefaults() Config {
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MessageDedupTTL == 0 {
		c.MessageDedupTTL = DefaultMessageDedupTTL
	}
	if c.ScanLimit == 0 {
		c.ScanLimit = DefaultScanLimit
	}
	if c.MaxCallDuration == 0 {
		c.MaxCallDuration = DefaultMaxCallDuration
	}
	return c
}

// Validate checks c after defaults are applied (NewLedger applies them).
func (c Config) Validate() error {
	c = c.withDefaults()
	if strings.Count(c.KeyPrefix, "{") != strings.Count(c.KeyPrefix, "}") {
		return fmt.Errorf("%w: KeyPrefix %q has unbalanced braces (hash tags)", ErrInvalidConfig, c.KeyPrefix)
	}
	if c.MessageDedupTTL < time.Hour {
		return fmt.Errorf("%w: MessageDedupTTL must be at least 1h, got %s", ErrInvalidConfig, c.MessageDedupTTL)
	}
	if c.MaxCallDuration < time.Minute {
		return fmt.Errorf("%w: MaxCallDuration must be at least 1m, got %s", ErrInvalidConfig, c.MaxCallDuration)
	}
	if c.ScanLimit < 1 {
		return fmt.Errorf("%w: ScanLimit must be positive, got %d", ErrInvalidConfig, c.ScanLimit)
	}
	return nil
}
