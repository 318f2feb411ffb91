package cloudapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
)

// Settings is the body of GET/POST /<phone-number-id>/settings, reduced to
// what callgw manages: the calling object.
type Settings struct {
	Calling CallingSettings `json:"calling"`
}

// CallingSettings is the "calling" object. Empty fields are omitted on
// update, leaving Meta's value unchanged; CallHours, when set, replaces
// Meta's call hours whole.
type CallingSettings struct {
	Status                   string          `json:"status,omitempty"`                     // ENABLED | DISABLED
	CallIconVisibility       string          `json:"call_icon_visibility,omitempty"`       // DEFAULT | DISABLE_ALL
	CallHours                *CallHours      `json:"call_hours,omitempty"`                 //
	CallbackPermissionStatus string          `json:"callback_permission_status,omitempty"` // ENABLED | DISABLED
	SRTPKeyExchangeProtocol  string          `json:"srtp_key_exchange_protocol,omitempty"` // DTLS | SDES
	SIP                      json.RawMessage `json:"sip,omitempty"`                        // passed through as is
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
	hhmmRE = regexp.MustCompile(`^([01][0-9]|2[0-3])[0-5][0-9]$`)
	dateRE = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`)
	tzRE   = regexp.MustCompile(`^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)*$`)
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
	Calling *CallingSettings `json:"calling"`
}

func (a *settingsAnswer) check() error {
	if a.Calling == nil {
		return errors.New("no calling object")
	}
	return nil
}

// GetSettings reads the number's calling settings. Retried when safe.
func (c *Client) GetSettings(ctx context.Context) (*Settings, error) {
	var a settingsAnswer
	if err := c.do(ctx, request{action: ActionGetSettings, method: http.MethodGet, path: "settings", safe: true}, &a); err != nil {
		return nil, err
	}
	return &Settings{Calling: *a.Calling}, nil
}

// UpdateSettings validates s and POSTs it. The same body twice has the same
// effect, so it is retried when safe.
func (c *Client) UpdateSettings(ctx context.Context, s Settings) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("cloudapi: %s: %w", ActionUpdateSettings, err)
	}
	return c.do(ctx, request{action: ActionUpdateSettings, method: http.MethodPost, path: "settings", safe: true, body: s},
		&successAnswer{})
}
