package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// Outbound calls from a chosen business number: an agent calls from the
// numbers of their teams (permission and billing key by the pair of that
// number and the user), and is warned when the number is outside its call
// hours (Meta's settings; the call still proceeds).

var (
	// ErrUnknownBusinessNumber: "from" names no number this deployment serves.
	ErrUnknownBusinessNumber = errors.New("signaling: unknown business number")
	// ErrNotYourNumber: the number is not one of the agent's teams' numbers.
	ErrNotYourNumber = errors.New("signaling: not one of the agent's numbers")
)

// Protocol codes of those errors.
const (
	CodeUnknownNumber = "unknown_number"
	CodeNotYourNumber = "not_your_number"
)

// callingNumber checks the number an agent dials from ("" = the main
// number, always allowed as before teams).
func (c *Controller) callingNumber(agent, from string) (string, error) {
	if from == "" || from == c.cfg.PhoneNumberID && c.routingConfig() == nil {
		return c.cfg.PhoneNumberID, nil
	}
	cfg := c.routingConfig()
	if cfg == nil {
		return "", fmt.Errorf("%w: %q", ErrUnknownBusinessNumber, from)
	}
	if _, ok := cfg.Number(from); !ok {
		if from == c.cfg.PhoneNumberID {
			return from, nil // the main number, not in the file: as before teams
		}
		return "", fmt.Errorf("%w: %q", ErrUnknownBusinessNumber, from)
	}
	if agent == "" {
		return from, nil
	}
	for _, n := range c.numbersOf(agent) {
		if n.PhoneNumberID == from {
			return from, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrNotYourNumber, from)
}

// dialerFor returns the Dialer of a business number (nil: none).
func (c *Controller) dialerFor(pnid string) Dialer {
	if pnid != "" && pnid != c.cfg.PhoneNumberID && c.dialers != nil {
		if d := c.dialers(pnid); d != nil {
			return d
		}
		return nil
	}
	return c.dial
}

// hoursWarning says when the number is outside its call hours now ("" when
// inside, or when its hours are unknown).
func (c *Controller) hoursWarning(ctx context.Context, pnid string) string {
	raw, err := c.store.settings(ctx, pnid)
	if err != nil || len(raw) == 0 {
		return ""
	}
	var s struct {
		CallHours *cloudapi.CallHours `json:"call_hours"`
	}
	if json.Unmarshal(raw, &s) != nil || s.CallHours == nil {
		return ""
	}
	open, known := CallHoursOpen(*s.CallHours, c.now())
	if !known || open {
		return ""
	}
	return "outside_call_hours"
}

// CallHoursOpen reports whether call hours (Meta's calling.call_hours) are
// open at t: hours not ENABLED are always open; a holiday window is
// closed; else open inside a weekly slot [open_time, close_time) of the
// number's time zone. known is false when the time zone is unknown.
func CallHoursOpen(h cloudapi.CallHours, t time.Time) (open, known bool) {
	if !strings.EqualFold(h.Status, "ENABLED") {
		return true, true
	}
	loc, err := time.LoadLocation(h.TimezoneID)
	if err != nil {
		return true, false
	}
	lt := t.In(loc)
	date, hhmm := lt.Format("2006-01-02"), lt.Format("1504")
	for _, d := range h.HolidaySchedule {
		if d.Date == date && hhmm >= d.StartTime && (d.EndTime == "" || hhmm < d.EndTime || d.EndTime == "0000") {
			return false, true
		}
	}
	day := strings.ToUpper(lt.Weekday().String())
	for _, s := range h.WeeklyOperatingHours {
		if strings.EqualFold(s.DayOfWeek, day) && hhmm >= s.OpenTime && (hhmm < s.CloseTime || s.CloseTime == "2400") {
			return true, true
		}
	}
	return false, true
}

// SettingsClient reads and changes a number's calling settings at Meta
// (cloudapi.Client of that number).
type SettingsClient interface {
	GetSettings(ctx context.Context) (*cloudapi.Settings, error)
	UpdateSettings(ctx context.Context, s cloudapi.Settings) error
}

// ErrBadSettings: the settings given are not valid (nothing was sent).
var ErrBadSettings = errors.New("signaling: invalid calling settings")

// UpdateNumberSettings changes a number's calling settings at Meta (call
// hours and holidays among them) and keeps what Meta then reports.
func (c *Controller) UpdateNumberSettings(ctx context.Context, pnid string, s cloudapi.Settings) (json.RawMessage, error) {
	if !c.serves(pnid) {
		return nil, ErrUnknownNumber
	}
	sc := c.settingsFor(pnid)
	if sc == nil {
		return nil, fmt.Errorf("%w: settings of %s", ErrNotConfigured, pnid)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSettings, err)
	}
	if h := s.Calling.CallHours; h != nil && h.TimezoneID != "" {
		if _, err := time.LoadLocation(h.TimezoneID); err != nil {
			return nil, fmt.Errorf("%w: %w: call_hours.timezone_id %q is not a known time zone", ErrBadSettings, cloudapi.ErrBadInput, h.TimezoneID)
		}
	}
	if err := sc.UpdateSettings(ctx, s); err != nil {
		if errors.Is(err, cloudapi.ErrBadInput) {
			return nil, fmt.Errorf("%w: %w", ErrBadSettings, err)
		}
		return nil, &MetaError{Code: metaCode(err), Err: err}
	}
	got, err := sc.GetSettings(ctx)
	if err != nil {
		return nil, &MetaError{Code: metaCode(err), Err: err}
	}
	if err := c.store.saveSettings(ctx, pnid, got.Calling.Raw); err != nil {
		return nil, err
	}
	return got.Calling.Raw, nil
}

// RefreshAllSettings reads the calling settings (call hours, callback
// permission) of every served number that has a settings client.
func (c *Controller) RefreshAllSettings(ctx context.Context) error {
	var errs []error
	for _, pnid := range append([]string{c.cfg.PhoneNumberID}, c.servedNumbers()...) {
		sc := c.settingsFor(pnid)
		if sc == nil {
			continue
		}
		err := c.RefreshSettings(ctx, pnid, func(ctx context.Context) (json.RawMessage, error) {
			s, err := sc.GetSettings(ctx)
			if err != nil {
				return nil, err
			}
			return s.Calling.Raw, nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("number %s: %w", pnid, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) settingsFor(pnid string) SettingsClient {
	if c.settingsClients == nil {
		return nil
	}
	return c.settingsClients(pnid)
}

// agentBusy tells routing an agent is in a call they placed (longest idle
// counts from its end).
func (c *Controller) agentBusy(ctx context.Context, agent string) {
	if c.router == nil || agent == "" {
		return
	}
	if err := c.router.AgentBusy(ctx, config.AgentID(agent)); err != nil {
		c.log.Warn("routing: agent busy", "err", err)
	}
}
