package cloudapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// Settings is the body of GET/POST /<phone-number-id>/settings, reduced to
// what callgw manages: the calling object.
type Settings struct {
	Calling CallingSettings `json:"calling"`
}

// CallingSettings is the "calling" object. Empty fields are omitted on
// update, leaving Meta's value unchanged; CallHours, when set, replaces
// Meta's call hours whole (omitting its HolidaySchedule deletes the
// holidays). GET answers are parsed leniently: unknown values are kept as
// sent, unknown fields ignored, and Raw holds the object as received.
type CallingSettings struct {
	Status                   string          `json:"status,omitempty"`                     // ENABLED | DISABLED
	CallIconVisibility       string          `json:"call_icon_visibility,omitempty"`       // DEFAULT | DISABLE_ALL
	CallIcons                *CallIcons      `json:"call_icons,omitempty"`                 //
	CallHours                *CallHours      `json:"call_hours,omitempty"`                 //
	CallbackPermissionStatus string          `json:"callback_permission_status,omitempty"` // ENABLED | DISABLED
	SRTPKeyExchangeProtocol  string          `json:"srtp_key_exchange_protocol,omitempty"` // DTLS | SDES
	SIP                      json.RawMessage `json:"sip,omitempty"`                        // passed through as is; ParseSIP reads it
	Audio                    *AudioSettings  `json:"audio,omitempty"`                      //
	// Restrictions is read-only (GET): never sent by UpdateSettings.
	Restrictions *Restrictions `json:"restrictions,omitempty"`
	// Raw is the calling object as Meta sent it (GET only).
	Raw json.RawMessage `json:"-"`
}

// CallIcons is calling.call_icons.
type CallIcons struct {
	// RestrictToUserCountries shows call icons only to users whose phone
	// number is from these ISO 3166 alpha-2 countries; empty (sent as [])
	// means no restriction.
	RestrictToUserCountries []string `json:"restrict_to_user_countries"`
}

// MarshalJSON sends an empty list as [] (not null).
func (c CallIcons) MarshalJSON() ([]byte, error) {
	l := c.RestrictToUserCountries
	if l == nil {
		l = []string{}
	}
	return json.Marshal(struct {
		R []string `json:"restrict_to_user_countries"`
	}{l})
}

// AudioSettings is calling.audio.
type AudioSettings struct {
	// AdditionalCodecs offered besides Opus: "PCMA", "PCMU" (G.711; Meta
	// transcodes). Empty (sent as []) removes them.
	AdditionalCodecs []string `json:"additional_codecs"`
}

// MarshalJSON sends an empty list as [] (not null).
func (a AudioSettings) MarshalJSON() ([]byte, error) {
	l := a.AdditionalCodecs
	if l == nil {
		l = []string{}
	}
	return json.Marshal(struct {
		C []string `json:"additional_codecs"`
	}{l})
}

// Restrictions is calling.restrictions (GET only).
type Restrictions struct {
	List []Restriction `json:"restrictions_list"`
}

// Restriction is one restrictions_list item, e.g. a 7-day quality pause.
type Restriction struct {
	Type       string   `json:"type"`
	Reason     string   `json:"reason,omitempty"`
	Expiration flexTime `json:"expiration"`
}

// ExpiresAt is the restriction's end; zero when absent or not understood.
func (r Restriction) ExpiresAt() time.Time { return r.Expiration.T }

// SIPSettings is calling.sip. callgw keeps SIP DISABLED: SIP ENABLED turns
// off the Graph call endpoints and call webhooks (131055).
type SIPSettings struct {
	Status  string      `json:"status"`
	Servers []SIPServer `json:"servers,omitempty"`
}

// SIPServer is one sip.servers item.
type SIPServer struct {
	Hostname             string            `json:"hostname"`
	Port                 flexInt           `json:"port"`
	RequestURIUserParams map[string]string `json:"request_uri_user_params,omitempty"`
}

// ParseSIP reads the SIP object; nil when absent.
func (c CallingSettings) ParseSIP() (*SIPSettings, error) {
	if len(c.SIP) == 0 || string(c.SIP) == "null" {
		return nil, nil
	}
	var s SIPSettings
	if err := json.Unmarshal(c.SIP, &s); err != nil {
		return nil, fmt.Errorf("%w: calling.sip: %w", ErrUnexpectedResponse, err)
	}
	return &s, nil
}

// CallHours is calling.call_hours.
type CallHours struct {
	Status               string           `json:"status"`      // ENABLED | DISABLED
	TimezoneID           string           `json:"timezone_id"` // e.g. "Europe/London"
	WeeklyOperatingHours []OperatingHours `json:"weekly_operating_hours"`
	HolidaySchedule      []Holiday        `json:"holiday_schedule,omitempty"`
}

// OperatingHours is one weekly slot; at most two per weekday.
type OperatingHours struct {
	DayOfWeek string `json:"day_of_week"` // MONDAY..SUNDAY
	OpenTime  string `json:"open_time"`   // HHMM
	CloseTime string `json:"close_time"`  // HHMM
}

// Holiday is one holiday_schedule item; at most 20.
type Holiday struct {
	Date      string `json:"date"`       // YYYY-MM-DD
	StartTime string `json:"start_time"` // HHMM
	EndTime   string `json:"end_time"`   // HHMM
}

// Settings limits from the reference.
const (
	MaxSlotsPerWeekday = 2
	MaxHolidays        = 20
)

var (
	hhmmRE    = regexp.MustCompile(`^([01][0-9]|2[0-3])[0-5][0-9]$`)
	dateRE    = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`)
	countryRE = regexp.MustCompile(`^[A-Z]{2}$`)
	tzRE      = regexp.MustCompile(`^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)*$`)
)

var weekdays = map[string]bool{"MONDAY": true, "TUESDAY": true, "WEDNESDAY": true, "THURSDAY": true,
	"FRIDAY": true, "SATURDAY": true, "SUNDAY": true}

func oneOf(field, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%w: %s %q must be one of %v", ErrBadInput, field, v, allowed)
}

// Validate checks the settings against the reference's enums and limits.
func (s Settings) Validate() error {
	c := s.Calling
	if err := firstErr(
		oneOf("calling.status", c.Status, "ENABLED", "DISABLED"),
		oneOf("calling.call_icon_visibility", c.CallIconVisibility, "DEFAULT", "DISABLE_ALL"),
		oneOf("calling.callback_permission_status", c.CallbackPermissionStatus, "ENABLED", "DISABLED"),
		oneOf("calling.srtp_key_exchange_protocol", c.SRTPKeyExchangeProtocol, "DTLS", "SDES"),
	); err != nil {
		return err
	}
	if len(c.SIP) > 0 && !json.Valid(c.SIP) {
		return fmt.Errorf("%w: calling.sip is not JSON", ErrBadInput)
	}
	if c.CallIcons != nil {
		seen := map[string]bool{}
		for i, cc := range c.CallIcons.RestrictToUserCountries {
			if !countryRE.MatchString(cc) || seen[cc] {
				return fmt.Errorf("%w: call_icons.restrict_to_user_countries[%d] %q must be a distinct ISO 3166 alpha-2 code (\"US\")",
					ErrBadInput, i, cc)
			}
			seen[cc] = true
		}
	}
	if c.Audio != nil {
		seen := map[string]bool{}
		for i, codec := range c.Audio.AdditionalCodecs {
			if (codec != "PCMA" && codec != "PCMU") || seen[codec] {
				return fmt.Errorf("%w: audio.additional_codecs[%d] %q must be PCMA or PCMU, once each", ErrBadInput, i, codec)
			}
			seen[codec] = true
		}
	}
	h := c.CallHours
	if h == nil {
		return nil
	}
	if h.Status == "" {
		return fmt.Errorf("%w: call_hours.status is required", ErrBadInput)
	}
	if err := oneOf("call_hours.status", h.Status, "ENABLED", "DISABLED"); err != nil {
		return err
	}
	if !tzRE.MatchString(h.TimezoneID) {
		return fmt.Errorf("%w: call_hours.timezone_id %q is not a time zone id", ErrBadInput, h.TimezoneID)
	}
	perDay := map[string]int{}
	for i, w := range h.WeeklyOperatingHours {
		if !weekdays[w.DayOfWeek] {
			return fmt.Errorf("%w: weekly_operating_hours[%d].day_of_week %q", ErrBadInput, i, w.DayOfWeek)
		}
		if !hhmmRE.MatchString(w.OpenTime) || !hhmmRE.MatchString(w.CloseTime) || w.OpenTime >= w.CloseTime {
			return fmt.Errorf("%w: weekly_operating_hours[%d] needs HHMM open_time before close_time, got %q-%q",
				ErrBadInput, i, w.OpenTime, w.CloseTime)
		}
		if perDay[w.DayOfWeek]++; perDay[w.DayOfWeek] > MaxSlotsPerWeekday {
			return fmt.Errorf("%w: more than %d slots on %s", ErrBadInput, MaxSlotsPerWeekday, w.DayOfWeek)
		}
		for j, o := range h.WeeklyOperatingHours[:i] {
			if o.DayOfWeek == w.DayOfWeek && w.OpenTime < o.CloseTime && o.OpenTime < w.CloseTime {
				return fmt.Errorf("%w: weekly_operating_hours[%d] %s-%s overlaps [%d] %s-%s on %s",
					ErrBadInput, i, w.OpenTime, w.CloseTime, j, o.OpenTime, o.CloseTime, w.DayOfWeek)
			}
		}
	}
	if len(h.HolidaySchedule) > MaxHolidays {
		return fmt.Errorf("%w: %d holidays, limit %d", ErrBadInput, len(h.HolidaySchedule), MaxHolidays)
	}
	for i, d := range h.HolidaySchedule {
		if !dateRE.MatchString(d.Date) {
			return fmt.Errorf("%w: holiday_schedule[%d].date %q must be YYYY-MM-DD", ErrBadInput, i, d.Date)
		}
		if !hhmmRE.MatchString(d.StartTime) || !hhmmRE.MatchString(d.EndTime) || d.StartTime >= d.EndTime {
			return fmt.Errorf("%w: holiday_schedule[%d] needs HHMM start_time before end_time", ErrBadInput, i)
		}
	}
	return nil
}

type settingsAnswer struct {
	Calling json.RawMessage `json:"calling"`
	parsed  *CallingSettings
}

func (a *settingsAnswer) check() error {
	if len(a.Calling) == 0 || string(a.Calling) == "null" {
		return errors.New("no calling object")
	}
	var cs CallingSettings
	if err := json.Unmarshal(a.Calling, &cs); err != nil {
		return fmt.Errorf("calling object: %w", err)
	}
	cs.Raw = a.Calling
	a.parsed = &cs
	return nil
}

// GetSettings reads the number's calling settings. Retried when safe.
func (c *Client) GetSettings(ctx context.Context) (*Settings, error) {
	var a settingsAnswer
	if err := c.do(ctx, request{action: ActionGetSettings, method: http.MethodGet, path: "settings", safe: true}, &a); err != nil {
		return nil, err
	}
	return &Settings{Calling: *a.parsed}, nil
}

// UpdateSettings validates s and POSTs it. The same body twice has the same
// effect, so it is retried when safe.
func (c *Client) UpdateSettings(ctx context.Context, s Settings) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("cloudapi: %s: %w", ActionUpdateSettings, err)
	}
	s.Calling.Restrictions = nil // read-only
	return c.do(ctx, request{action: ActionUpdateSettings, method: http.MethodPost, path: "settings", safe: true, body: s},
		&successAnswer{})
}

// flexTime is a time sent as epoch seconds (number or string) or RFC 3339;
// anything else is kept in Raw and leaves T zero (lenient).
type flexTime struct {
	T   time.Time
	Raw string
}

func (f *flexTime) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	f.Raw = s
	if s == "" || s == "null" {
		return nil
	}
	if t, ok := parseTimeExact(s); ok {
		f.T = t
	}
	return nil
}

// MarshalJSON writes what was received.
func (f flexTime) MarshalJSON() ([]byte, error) {
	if !f.T.IsZero() {
		return json.Marshal(f.T.Unix())
	}
	if f.Raw == "" {
		return []byte("null"), nil
	}
	return json.Marshal(f.Raw)
}

// flexInt is an integer sent as a number or a string.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not an integer: %q", s)
	}
	*f = flexInt(n)
	return nil
}

// UnmarshalJSON reads start_time/end_time (Meta's examples) and, leniently,
// open_time/close_time (a Meta table); POST always sends start_time/end_time.
func (h *Holiday) UnmarshalJSON(b []byte) error {
	var w struct {
		Date      string `json:"date"`
		StartTime string `json:"start_time"`
		EndTime   string `json:"end_time"`
		OpenTime  string `json:"open_time"`
		CloseTime string `json:"close_time"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = Holiday{Date: w.Date, StartTime: cmp.Or(w.StartTime, w.OpenTime), EndTime: cmp.Or(w.EndTime, w.CloseTime)}
	return nil
}
