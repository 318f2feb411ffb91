package metasim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

var (
	hhmmRE = regexp.MustCompile(`^([01][0-9]|2[0-3])[0-5][0-9]$|^2400$`)
	dateRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// graphSettings validates and stores POST /{PNID}/settings. Each top-level key
// of "calling" replaces the stored one whole (so call_hours is replaced
// whole and omitting holiday_schedule deletes it); bad input changes nothing.
// Afterwards an account_settings_update webhook carries the new settings.
func (s *Sim) graphSettings(num *bizNumber, body []byte) (any, *graphError) {
	var req struct {
		Calling map[string]json.RawMessage `json:"calling"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errParam("Invalid JSON body: %v", err)
	}
	if req.Calling == nil {
		return nil, errParam("The parameter calling is required")
	}
	enums := map[string][]string{
		"status":                     {"ENABLED", "DISABLED"},
		"call_icon_visibility":       {"DEFAULT", "DISABLE_ALL"},
		"callback_permission_status": {"ENABLED", "DISABLED"},
		"srtp_key_exchange_protocol": {"DTLS", "SDES"},
	}
	next := map[string]any{}
	for k, raw := range req.Calling {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, errParam("Invalid parameter calling.%s", k)
		}
		switch k {
		case "status", "call_icon_visibility", "callback_permission_status", "srtp_key_exchange_protocol":
			str, _ := v.(string)
			if !contains(enums[k], str) {
				return nil, errParam("Invalid parameter calling.%s: must be one of %v", k, enums[k])
			}
		case "call_hours":
			if err := checkCallHours(raw); err != nil {
				return nil, errParam("Invalid parameter calling.call_hours: %v", err)
			}
		case "sip":
			var sip struct {
				Status  string `json:"status"`
				Servers []struct {
					Hostname string `json:"hostname"`
					Port     int    `json:"port"`
				} `json:"servers"`
			}
			if err := json.Unmarshal(raw, &sip); err != nil || (sip.Status != "ENABLED" && sip.Status != "DISABLED") {
				return nil, errParam("Invalid parameter calling.sip: status must be ENABLED or DISABLED")
			}
			for _, srv := range sip.Servers {
				if srv.Hostname == "" || srv.Port < 0 || srv.Port > 65535 {
					return nil, errParam("Invalid parameter calling.sip.servers: hostname and port required")
				}
			}
		case "call_icons":
			var ci struct {
				Restrict []string `json:"restrict_to_user_countries"`
			}
			if err := json.Unmarshal(raw, &ci); err != nil {
				return nil, errParam("Invalid parameter calling.call_icons")
			}
		case "audio":
			var a struct {
				Codecs []string `json:"additional_codecs"`
			}
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, errParam("Invalid parameter calling.audio")
			}
			for _, c := range a.Codecs {
				if c != "PCMA" && c != "PCMU" {
					return nil, errParam("Invalid parameter calling.audio.additional_codecs: %q", c)
				}
			}
		case "restrictions":
			return nil, errParam("calling.restrictions is read-only")
		default:
			return nil, errParam("Unknown parameter calling.%s", k)
		}
		next[k] = v
	}
	s.mu.Lock()
	for k, v := range next {
		num.settings[k] = v
	}
	calling := cloneJSON(num.settings)
	s.mu.Unlock()
	s.enqueue(num, "account_settings_update", "PHONE_NUMBER_SETTINGS", map[string]any{
		"timestamp": epoch(s.cfg.Clock()),
		"type":      "PHONE_NUMBER_SETTINGS",
		"phone_number_settings": map[string]any{
			"phone_number_id": num.PhoneNumberID,
			"calling":         calling,
		},
	}, nil)
	return okResp, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func checkCallHours(raw json.RawMessage) error {
	var ch struct {
		Status               string `json:"status"`
		TimezoneID           string `json:"timezone_id"`
		WeeklyOperatingHours []struct {
			DayOfWeek string `json:"day_of_week"`
			OpenTime  string `json:"open_time"`
			CloseTime string `json:"close_time"`
		} `json:"weekly_operating_hours"`
		HolidaySchedule []struct {
			Date      string `json:"date"`
			StartTime string `json:"start_time"`
			EndTime   string `json:"end_time"`
		} `json:"holiday_schedule"`
	}
	if err := json.Unmarshal(raw, &ch); err != nil {
		return fmt.Errorf("bad object: %w", err)
	}
	if ch.Status != "ENABLED" && ch.Status != "DISABLED" {
		return fmt.Errorf("status %q must be ENABLED or DISABLED", ch.Status)
	}
	if ch.Status == "ENABLED" {
		if _, err := time.LoadLocation(ch.TimezoneID); err != nil || ch.TimezoneID == "" {
			return fmt.Errorf("timezone_id %q", ch.TimezoneID)
		}
		if len(ch.WeeklyOperatingHours) == 0 {
			return fmt.Errorf("weekly_operating_hours required when ENABLED")
		}
	}
	valid := map[string]bool{"MONDAY": true, "TUESDAY": true, "WEDNESDAY": true, "THURSDAY": true, "FRIDAY": true, "SATURDAY": true, "SUNDAY": true}
	type slot struct{ open, close string }
	days := map[string][]slot{}
	for _, w := range ch.WeeklyOperatingHours {
		if !valid[w.DayOfWeek] {
			return fmt.Errorf("day_of_week %q", w.DayOfWeek)
		}
		if !hhmmRE.MatchString(w.OpenTime) || !hhmmRE.MatchString(w.CloseTime) || w.OpenTime >= w.CloseTime {
			return fmt.Errorf("hours %q-%q must be HHMM with open before close", w.OpenTime, w.CloseTime)
		}
		for _, o := range days[w.DayOfWeek] {
			if w.OpenTime < o.close && o.open < w.CloseTime {
				return fmt.Errorf("overlapping slots on %s", w.DayOfWeek)
			}
		}
		days[w.DayOfWeek] = append(days[w.DayOfWeek], slot{w.OpenTime, w.CloseTime})
		if len(days[w.DayOfWeek]) > 2 {
			return fmt.Errorf("more than 2 slots on %s", w.DayOfWeek)
		}
	}
	if len(ch.HolidaySchedule) > 20 {
		return fmt.Errorf("more than 20 holidays")
	}
	for _, h := range ch.HolidaySchedule {
		if _, err := time.Parse("2006-01-02", h.Date); err != nil || !dateRE.MatchString(h.Date) {
			return fmt.Errorf("holiday date %q must be YYYY-MM-DD", h.Date)
		}
		if !hhmmRE.MatchString(h.StartTime) || !hhmmRE.MatchString(h.EndTime) || h.StartTime >= h.EndTime {
			return fmt.Errorf("holiday %s hours %q-%q", h.Date, h.StartTime, h.EndTime)
		}
	}
	return nil
}
