package cloudapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Permission status values.
const (
	PermissionNone      = "no_permission"
	PermissionTemporary = "temporary"
	PermissionPermanent = "permanent"
)

// Action names in call_permissions answers.
const (
	ActionNameSendPermissionRequest = "send_call_permission_request"
	ActionNameStartCall             = "start_call"
)

// Permission is Meta's live view of one user's call permission and the
// limits on what the business may do next.
type Permission struct {
	Status    string    // no_permission | temporary | permanent
	ExpiresAt time.Time // permission.expiration_time; zero when absent
	Actions   []Action
}

// Action is one actions[] item.
type Action struct {
	Name       string // send_call_permission_request | start_call
	CanPerform bool   // can_perform_action
	Limits     []Limit
}

// Limit is one limits[] item.
type Limit struct {
	TimePeriod   string        // ISO-8601 duration as sent: "PT24H", "P7D"
	Period       time.Duration // TimePeriod parsed; 0 when not understood
	MaxAllowed   int
	CurrentUsage int
	ExpiresAt    time.Time // limit_expiration_time; zero when absent
}

// Action returns the action named name, if present.
func (p *Permission) Action(name string) (Action, bool) {
	for _, a := range p.Actions {
		if a.Name == name {
			return a, true
		}
	}
	return Action{}, false
}

type wirePermissions struct {
	Permission *struct {
		Status         string    `json:"status"`
		ExpirationTime flexEpoch `json:"expiration_time"`
	} `json:"permission"`
	Actions []struct {
		Name       string `json:"action_name"`
		CanPerform bool   `json:"can_perform_action"`
		Limits     []struct {
			TimePeriod     string    `json:"time_period"`
			MaxAllowed     int       `json:"max_allowed"`
			CurrentUsage   int       `json:"current_usage"`
			LimitExpiresAt flexEpoch `json:"limit_expiration_time"`
		} `json:"limits"`
	} `json:"actions"`
}

func (w *wirePermissions) check() error {
	if w.Permission == nil || w.Permission.Status == "" {
		return errors.New("no permission.status")
	}
	return nil
}

// CallPermissions asks Meta for userWAID's call permission and the live
// limits (GET call_permissions?user_wa_id=N). Retried when safe. It is
// GetCallPermissions with a phone number.
func (c *Client) CallPermissions(ctx context.Context, userWAID string) (*Permission, error) {
	if err := checkNumber("user_wa_id", userWAID); err != nil {
		return nil, fmt.Errorf("cloudapi: %s: %w", ActionCallPermissions, err)
	}
	return c.GetCallPermissions(ctx, User{Phone: userWAID})
}

// GetCallPermissions asks Meta for a user's call permission and the live
// limits: GET call_permissions?user_wa_id=<digits> and/or
// ?recipient=<BSUID|parent BSUID> (both when both are known; Meta uses the
// number). Meta allows 5 of these per second per number (613/HTTP 429
// beyond): share the budget with PermissionsReader. Retried when safe.
func (c *Client) GetCallPermissions(ctx context.Context, u User) (*Permission, error) {
	return c.getCallPermissions(ctx, u, false)
}

func (c *Client) getCallPermissions(ctx context.Context, u User, once bool) (*Permission, error) {
	if err := u.Validate(); err != nil {
		return nil, fmt.Errorf("cloudapi: %s: %w", ActionCallPermissions, err)
	}
	q := url.Values{}
	if u.Phone != "" {
		q.Set("user_wa_id", strings.TrimPrefix(u.Phone, "+"))
	}
	if u.BSUID != "" {
		q.Set("recipient", u.BSUID)
	}
	var w wirePermissions
	err := c.do(ctx, request{
		action: ActionCallPermissions, method: http.MethodGet, path: "call_permissions", safe: true,
		query: q, subject: u.String(), once: once,
	}, &w)
	if err != nil {
		return nil, err
	}
	p := &Permission{Status: w.Permission.Status, ExpiresAt: w.Permission.ExpirationTime.t}
	for _, a := range w.Actions {
		act := Action{Name: a.Name, CanPerform: a.CanPerform}
		for _, l := range a.Limits {
			period, _ := parseISODuration(l.TimePeriod)
			act.Limits = append(act.Limits, Limit{TimePeriod: l.TimePeriod, Period: period,
				MaxAllowed: l.MaxAllowed, CurrentUsage: l.CurrentUsage, ExpiresAt: l.LimitExpiresAt.t})
		}
		p.Actions = append(p.Actions, act)
	}
	return p, nil
}

// flexEpoch is epoch seconds as a JSON number or string; null/""/0 → zero.
type flexEpoch struct{ t time.Time }

func (f *flexEpoch) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 253402300799 {
		return fmt.Errorf("bad epoch seconds %q", s)
	}
	if n > 0 {
		f.t = time.Unix(n, 0).UTC()
	}
	return nil
}

// parseISODuration reads the ISO-8601 durations Meta uses ("PT24H", "P7D",
// "P1W", "P1DT12H", "PT30M", "PT45S"). Years and months are refused.
func parseISODuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, fmt.Errorf("duration %q does not start with P", s)
	}
	var total time.Duration
	inTime, parts := false, 0
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("duration %q has two T", s)
			}
			inTime, rest = true, rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 6 {
			return 0, fmt.Errorf("duration %q is not understood", s)
		}
		n, _ := strconv.Atoi(rest[:i])
		unit := rest[i]
		rest = rest[i+1:]
		var u time.Duration
		switch {
		case !inTime && unit == 'W':
			u = 7 * 24 * time.Hour
		case !inTime && unit == 'D':
			u = 24 * time.Hour
		case inTime && unit == 'H':
			u = time.Hour
		case inTime && unit == 'M':
			u = time.Minute
		case inTime && unit == 'S':
			u = time.Second
		default:
			return 0, fmt.Errorf("duration %q has unsupported unit %q", s, unit)
		}
		total += time.Duration(n) * u
		parts++
	}
	if parts == 0 {
		return 0, fmt.Errorf("duration %q has no value", s)
	}
	return total, nil
}
