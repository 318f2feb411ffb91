package signaling

import (
	"errors"
	"time"

	"github.com/callgw/callgw/signaling/cloudapi"
)

// Config configures the call controller.
type Config struct {
	InstanceID        string        // names this instance in call ownership (default: hostname-pid)
	PhoneNumberID     string        // the business number's Graph id (required)
	Numbers           []string      // further business numbers (Graph ids) this deployment serves; events for others are acknowledged and ignored
	AppSecret         string        // verifies X-Hub-Signature-256 (required)
	VerifyToken       string        // answers Meta's subscription check (required)
	RingTimeout       time.Duration // agents must accept within this (default 25s; Meta needs accept within ~30s)
	AgentGrace        time.Duration // an agent leg may be down this long before the call ends (default 20s)
	MetaTerminateWait time.Duration // after we end a call, wait this long for Meta's terminate (its duration bills) (default 10s)
	KeyPrefix         string        // Redis key prefix (default "callgw:")
	StateTTL          time.Duration // lifetime of dedup keys and tombstones (default 7 days, Meta's retry horizon)
	MaskNumbers       bool          // mask caller numbers sent to agents
	PermissionText    string        // body of call permission requests (default below)
	// PermissionTemplate is the approved template (MARKETING or UTILITY, with
	// a call_permission_request component) sent outside the user's 24 h
	// customer service window, as "name:language". Empty: outside the
	// window a request is refused (template_required) before anything is sent.
	PermissionTemplate string
	LeaseTTL           time.Duration // call ownership lease; another instance ends a dead owner's calls after it (default 15s)
	RingCeiling        time.Duration // business-initiated: end a call not picked up after this (default 60s; Meta's own ceiling is undocumented)
	AcceptWindow       time.Duration // a user-initiated connect older than this is stale: recorded, not acted on (default 60s, Meta's accept window is 30-60 s)
	EarlyWait          time.Duration // webhooks for a call nobody placed wait this long before they are settled alone (default 30s)
}

func (c *Config) defaults() {
	if c.RingTimeout == 0 {
		c.RingTimeout = 25 * time.Second
	}
	if c.AgentGrace == 0 {
		c.AgentGrace = 20 * time.Second
	}
	if c.MetaTerminateWait == 0 {
		c.MetaTerminateWait = 10 * time.Second
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "callgw:"
	}
	if c.StateTTL == 0 {
		c.StateTTL = 7 * 24 * time.Hour
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.RingCeiling == 0 {
		c.RingCeiling = 60 * time.Second
	}
	if c.AcceptWindow == 0 {
		c.AcceptWindow = 60 * time.Second
	}
	if c.EarlyWait == 0 {
		c.EarlyWait = 30 * time.Second
	}
	if c.PermissionText == "" {
		c.PermissionText = "We would like to call you on WhatsApp about your request."
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	c.defaults()
	switch {
	case c.PhoneNumberID == "":
		return errors.New("signaling: phone number id is required")
	case c.AppSecret == "":
		return errors.New("signaling: app secret is required (webhook signatures)")
	case c.VerifyToken == "":
		return errors.New("signaling: verify token is required")
	case c.RingTimeout < time.Second || c.RingTimeout > 30*time.Second:
		return errors.New("signaling: ring timeout must be 1s..30s (Meta needs accept within about 30 s)")
	case c.PermissionTemplate != "" && !validTemplate(c.PermissionTemplate):
		return errors.New("signaling: permission template must be name:language (e.g. call_permission:en_US)")
	case c.AgentGrace < 0 || c.MetaTerminateWait < 0:
		return errors.New("signaling: durations must not be negative")
	}
	return nil
}

func validTemplate(s string) bool {
	_, err := cloudapi.ParseTemplateRef(s)
	return err == nil
}
