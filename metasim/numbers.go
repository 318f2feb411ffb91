package metasim

import (
	"crypto/subtle"
	"time"
)

// bizNumber is one business phone number and Meta's state for it.
type bizNumber struct {
	Number
	settings map[string]any // the "calling" object (guarded by Sim.mu)
	checks   []time.Time    // call_permissions requests in the last second (Clock)
}

func (n *bizNumber) meta() metadata {
	return metadata{DisplayPhoneNumber: n.DisplayPhoneNumber, PhoneNumberID: n.PhoneNumberID}
}

func (n *bizNumber) tokenOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(n.AccessToken)) == 1
}

func defaultSettings(callback bool) map[string]any {
	cbs := "DISABLED"
	if callback {
		cbs = "ENABLED"
	}
	return map[string]any{
		"status": "ENABLED", "call_icon_visibility": "DEFAULT",
		"call_icons":                 map[string]any{"restrict_to_user_countries": []any{}},
		"callback_permission_status": cbs,
		"call_hours": map[string]any{"status": "DISABLED", "timezone_id": "UTC",
			"weekly_operating_hours": []any{}, "holiday_schedule": []any{}},
		"sip":                        map[string]any{"status": "DISABLED", "servers": []any{}},
		"srtp_key_exchange_protocol": "DTLS",
		"audio":                      map[string]any{"additional_codecs": []any{}},
		"restrictions":               map[string]any{"restrictions_list": []any{}},
	}
}

// buildNumbers lists the primary number then cfg.Numbers.
func buildNumbers(cfg Config) (map[string]*bizNumber, []*bizNumber) {
	all := append([]Number{{PhoneNumberID: cfg.PhoneNumberID, DisplayPhoneNumber: cfg.DisplayPhoneNumber,
		WABAID: cfg.WABAID, AccessToken: cfg.AccessToken, NoBIC: cfg.PrimaryNoBIC}}, cfg.Numbers...)
	byID := map[string]*bizNumber{}
	var order []*bizNumber
	for _, n := range all {
		if n.WABAID == "" {
			n.WABAID = cfg.WABAID
		}
		if n.AccessToken == "" {
			n.AccessToken = cfg.AccessToken
		}
		b := &bizNumber{Number: n, settings: defaultSettings(cfg.CallbackPermission)}
		byID[n.PhoneNumberID] = b
		order = append(order, b)
	}
	return byID, order
}

// number returns the number with Graph id or display number id ("" = primary), or nil.
func (s *Sim) number(id string) *bizNumber {
	if id == "" {
		return s.order[0]
	}
	if n := s.numbers[id]; n != nil {
		return n
	}
	d := id
	if len(d) > 0 && d[0] == '+' {
		d = d[1:]
	}
	for _, n := range s.order {
		if n.DisplayPhoneNumber == d {
			return n
		}
	}
	return nil
}

// Numbers returns the business numbers served, the primary first.
func (s *Sim) Numbers() []Number {
	out := make([]Number, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, n.Number)
	}
	return out
}

// numberSetting reads a top-level string setting of num's calling object.
func (s *Sim) numberSetting(num *bizNumber, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _ := num.settings[key].(string)
	return v
}

func (s *Sim) sipEnabled(num *bizNumber) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sip, _ := num.settings["sip"].(map[string]any)
	st, _ := sip["status"].(string)
	return st == "ENABLED"
}
