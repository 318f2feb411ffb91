package metasim

import (
	"fmt"
	"net/http"
	"time"
)

// grant kinds held by Meta for a business+user pair.
type grantKind uint8

const (
	grantNone grantKind = iota
	grantTemporary
	grantPermanent
)

// userPerm is Meta's permission state for one user of the business number.
type userPerm struct {
	kind       grantKind
	expires    time.Time   // temporary grants
	requests   []time.Time // permission requests in the last 7 days
	connected  []time.Time // connected business-initiated calls in the last 24 h
	unanswered int         // unanswered business-initiated calls in a row
}

func permKey(num *bizNumber, key string) string { return num.PhoneNumberID + "|" + key }

// permLocked returns the state for user key on num, pruned at now. s.mu must be held.
func (s *Sim) permLocked(num *bizNumber, key string, now time.Time) *userPerm {
	p := s.perms[permKey(num, key)]
	if p == nil {
		p = &userPerm{}
		s.perms[permKey(num, key)] = p
	}
	if p.kind == grantTemporary && !now.Before(p.expires) {
		p.kind, p.expires = grantNone, time.Time{}
	}
	p.requests = since(p.requests, now.Add(-7*24*time.Hour))
	p.connected = since(p.connected, now.Add(-24*time.Hour))
	return p
}

func since(ts []time.Time, from time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(from) {
		i++
	}
	return ts[i:]
}

func countSince(ts []time.Time, from time.Time) (n int, oldest time.Time) {
	for _, t := range ts {
		if t.After(from) {
			if n == 0 {
				oldest = t
			}
			n++
		}
	}
	return n, oldest
}

// checkRequest decides a permission request at now and records it when allowed.
func (s *Sim) checkRequest(num *bizNumber, n string, now time.Time) *graphError {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.permLocked(num, n, now)
	if p.kind == grantPermanent {
		return errGraph(400, 138017, "A permanent call permission already exists for this user")
	}
	d, _ := countSince(p.requests, now.Add(-24*time.Hour))
	w, _ := countSince(p.requests, now.Add(-7*24*time.Hour))
	if d >= s.cfg.Limits.RequestsPer24h || w >= s.cfg.Limits.RequestsPer7d {
		return errGraph(400, 138009, "Call permission request limit reached for this user")
	}
	p.requests = append(p.requests, now)
	return nil
}

// checkConnect decides whether a business-initiated call to n may start.
func (s *Sim) checkConnect(num *bizNumber, n string, now time.Time) *graphError {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.permLocked(num, n, now)
	if p.kind == grantNone {
		return errGraph(http.StatusUnauthorized, 138006, "No approved call permission from the recipient")
	}
	if c, oldest := countSince(p.connected, now.Add(-24*time.Hour)); c >= s.cfg.Limits.ConnectedCallsPer24h {
		e := errGraph(400, 138012, "Business-initiated connected call limit reached for this user")
		e.details = fmt.Sprintf("next call allowed at %d", oldest.Add(24*time.Hour).Unix())
		return e
	}
	for _, c := range s.calls {
		if c.num == num && c.key == n && !c.Reached(Ended) {
			return errGraph(400, 138003, "A call with this user is already in progress")
		}
	}
	return nil
}

// grant stores a permission for user n.
func (s *Sim) grant(num *bizNumber, n string, kind grantKind, now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.permLocked(num, n, now)
	if p.kind == grantPermanent && kind == grantTemporary {
		return time.Time{}
	}
	p.kind = kind
	p.expires = time.Time{}
	if kind == grantTemporary {
		p.expires = now.Add(s.cfg.Limits.TemporaryValidity)
	}
	return p.expires
}

// callConnected records a connected call: request counters reset (either
// direction); a business-initiated one counts toward the 24 h limit and
// breaks the unanswered streak.
func (s *Sim) callConnected(num *bizNumber, n string, dir direction, now time.Time) {
	if n == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.permLocked(num, n, now)
	p.requests = nil
	if dir == businessInitiated {
		p.connected = append(p.connected, now)
		p.unanswered = 0
	}
}

// callUnanswered counts an unanswered business-initiated call and reports
// whether the permission was just revoked.
func (s *Sim) callUnanswered(num *bizNumber, n string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.permLocked(num, n, now)
	p.unanswered++
	if p.unanswered < s.cfg.Limits.UnansweredRevoke {
		return false
	}
	p.unanswered = 0
	p.kind, p.expires = grantNone, time.Time{}
	return true
}

// permissionsView builds the call_permissions answer for user n.
func (s *Sim) permissionsView(num *bizNumber, n string, now time.Time) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.permLocked(num, n, now)
	perm := map[string]any{"status": "no_permission"}
	switch p.kind {
	case grantTemporary:
		perm["status"] = "temporary"
		perm["expiration_time"] = p.expires.Unix()
	case grantPermanent:
		perm["status"] = "permanent"
	}
	limit := func(period string, max int, ts []time.Time, window time.Duration) map[string]any {
		n, oldest := countSince(ts, now.Add(-window))
		l := map[string]any{"time_period": period, "max_allowed": max, "current_usage": n}
		if n >= max && n > 0 { // only when the limit is used up
			l["limit_expiration_time"] = oldest.Add(window).Unix()
		}
		return l
	}
	r24 := limit("PT24H", s.cfg.Limits.RequestsPer24h, p.requests, 24*time.Hour)
	r7 := limit("P7D", s.cfg.Limits.RequestsPer7d, p.requests, 7*24*time.Hour)
	c24 := limit("PT24H", s.cfg.Limits.ConnectedCallsPer24h, p.connected, 24*time.Hour)
	canRequest := p.kind != grantPermanent &&
		r24["current_usage"].(int) < s.cfg.Limits.RequestsPer24h && r7["current_usage"].(int) < s.cfg.Limits.RequestsPer7d
	canCall := p.kind != grantNone && c24["current_usage"].(int) < s.cfg.Limits.ConnectedCallsPer24h
	return map[string]any{
		"messaging_product": "whatsapp",
		"permission":        perm,
		"actions": []any{
			map[string]any{"action_name": "send_call_permission_request", "can_perform_action": canRequest,
				"limits": []any{r24, r7}},
			map[string]any{"action_name": "start_call", "can_perform_action": canCall,
				"limits": []any{c24}},
		},
	}
}

// DropPermission removes a user's permission (phone or BSUID) on Meta's side
// for every business number without sending any webhook, as when a webhook is
// lost: tests use it to check that callgw corrects its own state from Meta's
// refusal (138006).
func (s *Sim) DropPermission(user string) error {
	u, gerr := s.lookup(user)
	if gerr != nil {
		return fmt.Errorf("%w: %s", ErrInvalidNumber, gerr.msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, num := range s.order {
		p := s.permLocked(num, u.key, s.cfg.Clock())
		p.kind, p.expires = grantNone, time.Time{}
	}
	return nil
}

// GrantPermission gives a user (phone or BSUID) a permission on number pnid
// ("" = primary) without any message, as a grant from the business profile
// (permanent) would: no webhook is sent.
func (s *Sim) GrantPermission(pnid, user string, permanent bool) error {
	num := s.number(pnid)
	if num == nil {
		return fmt.Errorf("%w: unknown business number %q", ErrInvalidNumber, pnid)
	}
	u, gerr := s.lookup(user)
	if gerr != nil {
		return fmt.Errorf("%w: %s", ErrInvalidNumber, gerr.msg)
	}
	kind := grantTemporary
	if permanent {
		kind = grantPermanent
	}
	s.grant(num, u.key, kind, s.cfg.Clock())
	return nil
}

// checkRate applies the call_permissions rate limit of num at now: at most
// PermissionChecksPerSecond requests per 1-second window → 613 / HTTP 429.
func (s *Sim) checkRate(num *bizNumber, now time.Time) *graphError {
	max := s.cfg.PermissionChecksPerSecond
	if max < 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	num.checks = since(num.checks, now.Add(-time.Second))
	if len(num.checks) >= max {
		e := errGraph(http.StatusTooManyRequests, 613, "Calls to this api have exceeded the rate limit.")
		e.typ = "OAuthException"
		return e
	}
	num.checks = append(num.checks, now)
	return nil
}
