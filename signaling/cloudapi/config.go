package cloudapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults applied to zero Config fields.
const (
	DefaultBaseURL        = "https://graph.facebook.com"
	DefaultVersion        = "v23.0"
	DefaultTimeout        = 5 * time.Second
	DefaultMaxRetries     = 3
	DefaultRetryBaseDelay = 200 * time.Millisecond
	DefaultRetryMaxDelay  = 5 * time.Second
	maxMaxRetries         = 10
)

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	// BaseURL of the Graph API. Default DefaultBaseURL
	// ("https://graph.facebook.com"); the simulator or a test server otherwise.
	BaseURL string
	// Version of the Graph API, "vNN.N". Default DefaultVersion ("v23.0").
	// Meta retires versions over time: keep it a setting.
	Version string
	// AccessToken is the system-user token sent as "Authorization: Bearer".
	// Required; never logged.
	AccessToken string
	// PhoneNumberID is the business number's Graph id (digits). Required.
	PhoneNumberID string
	// HTTPClient sends the requests. Default: a client with its own clone of
	// http.DefaultTransport (closed by Client.Close). Its own Timeout, if any,
	// bounds all attempts together; prefer Timeout below.
	HTTPClient *http.Client
	// Timeout bounds one attempt (connect, send, read the answer).
	// Default DefaultTimeout (5s).
	Timeout time.Duration
	// MaxRetries is how many times a safe request (pre_accept, accept,
	// reject, terminate, GETs, settings) is repeated after a network error,
	// a 429 or a 5xx. 0 means DefaultMaxRetries (3); negative means never;
	// at most 10. connect and messages are retried only when the connection
	// was refused before anything was sent.
	MaxRetries int
	// RetryBaseDelay is the first backoff; each retry doubles it, with
	// jitter (a uniform pick in [d/2, d]). Default DefaultRetryBaseDelay (200ms).
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps one backoff, including a Retry-After from Meta.
	// Default DefaultRetryMaxDelay (5s).
	RetryMaxDelay time.Duration
	// Logger receives debug lines per request and warnings per retry, with
	// phone numbers masked and no token or SDP. Default: discard.
	Logger *slog.Logger
}

var (
	versionRE = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,2}$`)
	digitsRE  = regexp.MustCompile(`^[0-9]{1,32}$`)
)

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.RetryBaseDelay == 0 {
		c.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if c.RetryMaxDelay == 0 {
		c.RetryMaxDelay = DefaultRetryMaxDelay
	}
	return c
}

// Validate reports the first problem of the config, after defaults.
func (c Config) Validate() error {
	d := c.withDefaults()
	u, err := url.Parse(d.BaseURL)
	switch {
	case err != nil:
		return fmt.Errorf("%w: BaseURL: %w", ErrBadConfig, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.RawQuery != "", u.Fragment != "":
		return fmt.Errorf("%w: BaseURL %q must be http(s)://host[/path]", ErrBadConfig, d.BaseURL)
	case !versionRE.MatchString(d.Version):
		return fmt.Errorf("%w: Version %q must look like \"v23.0\"", ErrBadConfig, d.Version)
	case d.AccessToken == "":
		return fmt.Errorf("%w: AccessToken is required", ErrBadConfig)
	case strings.ContainsAny(d.AccessToken, " \t\r\n"):
		return fmt.Errorf("%w: AccessToken contains whitespace", ErrBadConfig)
	case !digitsRE.MatchString(d.PhoneNumberID):
		return fmt.Errorf("%w: PhoneNumberID %q must be the number's Graph id (digits)", ErrBadConfig, d.PhoneNumberID)
	case d.Timeout < 0:
		return fmt.Errorf("%w: Timeout %v is negative", ErrBadConfig, d.Timeout)
	case d.MaxRetries > maxMaxRetries:
		return fmt.Errorf("%w: MaxRetries %d above %d", ErrBadConfig, d.MaxRetries, maxMaxRetries)
	case d.RetryBaseDelay < 0 || d.RetryMaxDelay < 0:
		return fmt.Errorf("%w: retry delays must not be negative", ErrBadConfig)
	case d.RetryBaseDelay > d.RetryMaxDelay:
		return fmt.Errorf("%w: RetryBaseDelay %v above RetryMaxDelay %v", ErrBadConfig, d.RetryBaseDelay, d.RetryMaxDelay)
	}
	return nil
}
