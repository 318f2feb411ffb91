package signaling

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/webhook"
)

// Users are a phone number and/or a business-scoped user id (BSUID): Meta
// may withhold the number of a user with a username. This file keeps what
// links the two (every webhook that carries both), and the customer service
// window, per business number and user, under either id.

// linkTTL bounds how long a phone↔BSUID link is kept without being seen
// again (Meta regenerates a BSUID when the user changes number).
const linkTTL = 90 * 24 * time.Hour

func (s *store) linkKey(kind, id string) string { return s.prefix + "user:{" + id + "}:" + kind }

// linkUser records that phoneDigits and bsuid are the same user.
func (s *store) linkUser(ctx context.Context, phoneDigits, bsuid string) error {
	if phoneDigits == "" || bsuid == "" {
		return nil
	}
	if err := s.rdb.Set(ctx, s.linkKey("bsuid", phoneDigits), bsuid, linkTTL).Err(); err != nil {
		return storeErr("link user", err)
	}
	if err := s.rdb.Set(ctx, s.linkKey("phone", bsuid), phoneDigits, linkTTL).Err(); err != nil {
		return storeErr("link user", err)
	}
	return nil
}

// completeUser fills the id Meta did not give from a link, if any.
func (s *store) completeUser(ctx context.Context, u phone.User) (phone.User, error) {
	switch {
	case u.Phone.E164 != "" && u.BSUID == "":
		b, err := s.rdb.Get(ctx, s.linkKey("bsuid", u.Phone.Digits)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return u, storeErr("user link", err)
		}
		u.BSUID = b
	case u.Phone.E164 == "" && u.BSUID != "":
		d, err := s.rdb.Get(ctx, s.linkKey("phone", u.BSUID)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return u, storeErr("user link", err)
		}
		if n, perr := phone.Parse(d); d != "" && perr == nil {
			u.Phone = n
		}
	}
	return u, nil
}

func (s *store) windowKey(business, user string) string {
	return s.prefix + "cw:{" + business + ":" + user + "}"
}

// openWindow records that the user reached the business number (a message,
// a call answered or not, or accepting our call): the 24 h customer service
// window, under each id the user is known by.
func (s *store) openWindow(ctx context.Context, business string, u phone.User) error {
	for _, id := range []string{u.Phone.Digits, u.BSUID} {
		if id == "" {
			continue
		}
		if err := s.rdb.Set(ctx, s.windowKey(business, id), 1, 24*time.Hour).Err(); err != nil {
			return storeErr("customer window", err)
		}
	}
	return nil
}

// windowOpen reports whether the user's customer service window is open.
func (s *store) windowOpen(ctx context.Context, business string, u phone.User) (bool, error) {
	for _, id := range []string{u.Phone.Digits, u.BSUID} {
		if id == "" {
			continue
		}
		n, err := s.rdb.Exists(ctx, s.windowKey(business, id)).Result()
		if err != nil {
			return false, storeErr("customer window", err)
		}
		if n == 1 {
			return true, nil
		}
	}
	return false, nil
}

// userOf reads the user of a webhook: number and BSUID as Meta gave them,
// with the name and username from contacts.
func userOf(number, bsuid, parent string, ev webhook.Event) phone.User {
	u := phone.User{BSUID: bsuid, Parent: parent, Name: ev.ContactName, Handle: ev.ContactUsername}
	if n, err := phone.Parse(number); number != "" && err == nil {
		u.Phone = n
	}
	if u.BSUID != "" && !phone.IsBSUID(u.BSUID) {
		u.BSUID = ""
	}
	return u
}

// seeUser links the ids of a user a webhook names, and completes the user
// from earlier links.
func (c *Controller) seeUser(ctx context.Context, u phone.User) phone.User {
	if u.Phone.E164 != "" && u.BSUID != "" {
		if err := c.store.linkUser(ctx, u.Phone.Digits, u.BSUID); err != nil {
			c.m.redisErrors.WithLabelValues("user_link").Inc()
		}
		return u
	}
	full, err := c.store.completeUser(ctx, u)
	if err != nil {
		c.m.redisErrors.WithLabelValues("user_link").Inc()
		return u
	}
	return full
}

// serves reports whether this deployment serves the business number.
// An event without metadata (not Meta's shape, but seen in old samples) is
// taken as ours.
func (c *Controller) serves(pnid string) bool {
	if pnid == "" || pnid == c.cfg.PhoneNumberID {
		return true
	}
	return slices.Contains(c.servedNumbers(), pnid)
}

// servedNumbers are the further numbers served now (Config.Numbers, then
// SetNumbers).
func (c *Controller) servedNumbers() []string {
	if p := c.numbers.Load(); p != nil {
		return *p
	}
	return nil
}

// SetNumbers replaces the further business numbers served (configuration
// reload): a number added is served at once; a number removed takes no new
// call, but the events of its calls in progress (call webhooks other than
// connect, call statuses) are still applied, so that they end as usual.
func (c *Controller) SetNumbers(ids []string) {
	old := c.servedNumbers()
	next := slices.Clone(ids)
	for _, id := range old {
		if !slices.Contains(next, id) {
			c.retired.Store(id, true)
			c.log.Info("number no longer served: its calls in progress continue", "phone_number_id", id)
		}
	}
	for _, id := range next {
		c.retired.Delete(id)
		c.foreign.Delete(id)
	}
	c.numbers.Store(&next)
}

// retiredEvent reports whether ev concerns a call in progress of a number
// removed by a reload (applied; new calls are not).
func (c *Controller) retiredEvent(ev webhook.Event) bool {
	if _, ok := c.retired.Load(ev.PhoneNumberID); !ok {
		return false
	}
	return (ev.Call != nil && ev.Call.Event != webhook.CallConnect) || ev.Status != nil
}

// foreignNumber counts and logs (once per number) an event for a number
// this deployment does not serve.
func (c *Controller) foreignNumber(pnid string) {
	c.m.webhooks.WithLabelValues("foreign_number", resIgnored).Inc()
	if _, seen := c.foreign.LoadOrStore(pnid, true); !seen {
		c.log.Warn("webhook for a phone number this deployment does not serve: acknowledged and ignored",
			"phone_number_id", pnid)
	}
}

// graphFor is the Graph client of a business number.
func (c *Controller) graphFor(pnid string) Graph {
	if c.graphs != nil && pnid != "" && pnid != c.cfg.PhoneNumberID {
		if g := c.graphs(pnid); g != nil {
			return g
		}
	}
	return c.graph
}
