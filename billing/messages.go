package billing

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/phone"
)

// MessageKind says what callgw sent.
type MessageKind string

// Message kinds callgw sends.
const (
	KindPermissionRequest MessageKind = "permission_request" // call_permission_request (free-form or template)
	KindCallButton        MessageKind = "call_button"        // a message or template with a voice_call button
	KindOther             MessageKind = "other"
)

// String returns the kind name.
func (k MessageKind) String() string { return string(k) }

// StatusKind is a message status from the `messages` status webhook.
type StatusKind string

// Message statuses.
const (
	StatusSent      StatusKind = "sent"
	StatusDelivered StatusKind = "delivered"
	StatusRead      StatusKind = "read"
	StatusFailed    StatusKind = "failed"
)

// String returns the status name.
func (s StatusKind) String() string { return string(s) }

func (s StatusKind) rank() int {
	switch s {
	case StatusSent:
		return 1
	case StatusFailed:
		return 2
	case StatusDelivered:
		return 3
	case StatusRead:
		return 4
	}
	return 0
}

// MessageState is where a metered message stands.
type MessageState string

// Message states.
const (
	// MessagePending: sent, no settling status yet (the charge is pending).
	MessagePending MessageState = "pending"
	// MessageAwaitingSent: a status arrived before Sent; it settles when
	// Sent tells the market and month.
	MessageAwaitingSent MessageState = "awaiting_sent"
	// MessageCharged: delivered (or read) and billable: charged once.
	MessageCharged MessageState = "charged"
	// MessageFree: delivered (or read) and not billable, counted by type.
	MessageFree MessageState = "free"
	// MessageFailed: failed before delivery: never charged.
	MessageFailed MessageState = "failed"
)

// String returns the state name.
func (s MessageState) String() string { return string(s) }

func (s MessageState) final() bool {
	return s == MessageCharged || s == MessageFree || s == MessageFailed
}

// MessageSent is a message callgw sent (the Graph API answered with its
// wamid).
type MessageSent struct {
	ID       string      // wamid: the idempotency key
	Business string      // WABA id or phone number id
	User     string      // the user's phone number or BSUID
	Country  string      // ISO alpha-2; "" = derived from User (number, else BSUID prefix)
	At       time.Time   // when it was sent: its month and day
	Kind     MessageKind // what it was
}

// MessageStatus is one status webhook for a message callgw sent, with its
// pricing object ({billable, pricing_model, type, category}).
type MessageStatus struct {
	ID           string     // wamid
	Status       StatusKind // sent, delivered, read, failed
	Billable     bool       // pricing.billable
	PricingModel string     // pricing.pricing_model ("PMP"; "CBP" on old records)
	Type         string     // pricing.type: regular, free_customer_service, free_entry_point, …
	Category     string     // pricing.category: marketing, utility, authentication, service, … (stored as-is)
	At           time.Time  // status timestamp
}

// MessageCharge is what a metered message costs, as far as is known.
type MessageCharge struct {
	ID         string       `json:"id"`
	State      MessageState `json:"state"`
	Category   Category     `json:"category,omitempty"`
	Type       string       `json:"type,omitempty"`
	Country    string       `json:"country,omitempty"`
	Market     string       `json:"market,omitempty"`
	CostMicros int64        `json:"cost_micros"`
	Tier       int          `json:"tier"`      // message tier index when charged, else -1
	Duplicate  bool         `json:"duplicate"` // nothing changed: a replayed Sent or status
}

// pmState is the stored record of one message (hash pm:<id>).
type pmState struct {
	Ver                    int64
	Sent                   bool
	Business, User, Kind   string
	Country, Market, Month string
	Day                    string
	Status                 StatusKind
	Billable               bool
	PricingModel, Type     string
	Category               Category
	State                  MessageState
	Cost                   int64
	Tier                   int
	StatusAtMs             int64
	hasPricing             bool
	sentAtMs               int64
}

func (s pmState) fields() []any {
	return []any{"sent", boolArg(s.Sent), "biz", s.Business, "user", s.User, "kind", s.Kind, "country", s.Country,
		"mkt", s.Market, "month", s.Month, "day", s.Day, "status", string(s.Status), "billable", boolArg(s.Billable),
		"model", s.PricingModel, "type", s.Type, "cat", string(s.Category), "state", string(s.State),
		"pricing", boolArg(s.hasPricing), "sat", s.sentAtMs, "stat", s.StatusAtMs}
}

func pmFromHash(h map[string]string) pmState {
	i := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	s := pmState{Ver: i("v"), Sent: h["sent"] == "1", Business: h["biz"], User: h["user"], Kind: h["kind"],
		Country: h["country"], Market: h["mkt"], Month: h["month"], Day: h["day"], Status: StatusKind(h["status"]),
		Billable: h["billable"] == "1", PricingModel: h["model"], Type: h["type"], Category: Category(h["cat"]),
		State: MessageState(h["state"]), Cost: i("cost"), Tier: -1, hasPricing: h["pricing"] == "1",
		sentAtMs: i("sat"), StatusAtMs: i("stat")}
	if t, ok := h["tier"]; ok {
		n, _ := strconv.Atoi(t)
		s.Tier = n
	}
	return s
}

// catKey is the category a message is counted under before its category is known.
func (s pmState) catKey() string {
	if s.Category == "" {
		return "unknown"
	}
	return string(s.Category)
}

// settle derives the state of next (merged from prev and one event) and the
// month-hash deltas the transition from prev implies. charge says the
// script must price the message (tiered, atomically).
func settle(prev, next pmState) (pmState, [][2]any, bool) {
	switch {
	case prev.State.final():
		next.State = prev.State
	case !next.Sent && next.Status != "":
		next.State = MessageAwaitingSent
	case !next.Sent:
		next.State = ""
	case next.Status == StatusDelivered || next.Status == StatusRead:
		if next.Billable {
			next.State = MessageCharged
		} else {
			next.State = MessageFree
		}
	case next.Status == StatusFailed:
		next.State = MessageFailed
	default:
		next.State = MessagePending
	}
	var d [][2]any
	if prev.State == MessagePending && (next.State != MessagePending || prev.catKey() != next.catKey()) {
		d = append(d, [2]any{"pm:" + prev.catKey() + ":pending", -1})
	}
	if next.State == MessagePending && (prev.State != MessagePending || prev.catKey() != next.catKey()) {
		d = append(d, [2]any{"pm:" + next.catKey() + ":pending", 1})
	}
	charge := false
	if next.State != prev.State {
		switch next.State {
		case MessageCharged:
			d = append(d, [2]any{"pm:" + next.catKey() + ":billable", 1})
			charge = true
		case MessageFree:
			t := next.Type
			if t == "" {
				t = "unknown"
			}
			d = append(d, [2]any{"pm:" + next.catKey() + ":free:" + t, 1})
		case MessageFailed:
			d = append(d, [2]any{"pm:" + next.catKey() + ":failed", 1})
		}
	}
	return next, d, charge
}

// messageScript applies one message transition if the stored version is the
// one Go read (optimistic concurrency; it returns {0} on a conflict and Go
// retries), charging the message at its graduated tier when asked: the
// tier counter is incremented inside the script so concurrent messages get
// consecutive numbers.
//
// KEYS: 1 pm hash, 2 month hash, 3 day hash
// ARGV: 1 expected version, 2 ttl ms, 3 n fields, field/value pairs, then n
// deltas, field/delta pairs, then charge "1"/"0", tier counter field, cost
// field, day count field, day cost field, n tiers, from/rate pairs.
var messageScript = redis.NewScript(`
local ver = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ver ~= tonumber(ARGV[1]) then
  return {0}
end
local i = 3
local nf = tonumber(ARGV[i])
for j = 1, nf do
  redis.call('HSET', KEYS[1], ARGV[i + 2 * j - 1], ARGV[i + 2 * j])
end
i = i + 2 * nf + 1
local nd = tonumber(ARGV[i])
for j = 1, nd do
  redis.call('HINCRBY', KEYS[2], ARGV[i + 2 * j - 1], ARGV[i + 2 * j])
end
i = i + 2 * nd + 1
local cost, tier = 0, -1
if ARGV[i] == '1' then
  local n = redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1)
  local nt = tonumber(ARGV[i + 5])
  for j = 0, nt - 1 do
    if j == 0 or n > tonumber(ARGV[i + 6 + 2 * j]) then
      tier = j
      cost = tonumber(ARGV[i + 7 + 2 * j])
    end
  end
  redis.call('HINCRBY', KEYS[2], ARGV[i + 2], cost)
  redis.call('HINCRBY', KEYS[3], ARGV[i + 3], 1)
  redis.call('HINCRBY', KEYS[3], ARGV[i + 4], cost)
  redis.call('HSET', KEYS[1], 'cost', cost, 'tier', tier)
end
redis.call('HSET', KEYS[1], 'v', ver + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, cost, tier}
`)

// Sent records a message callgw sent as pending (idempotent on the wamid: a
// second Sent changes nothing). If its status already arrived, Sent settles
// it. The market comes from m.Country, else from User (number, else BSUID).
func (l *Ledger) Sent(ctx context.Context, m MessageSent) (MessageCharge, error) {
	switch {
	case m.ID == "" || len(m.ID) > 512:
		return MessageCharge{}, fmt.Errorf("%w: message id must be 1..512 bytes", ErrInvalidMessage)
	case m.Business == "":
		return MessageCharge{}, fmt.Errorf("%w: message %s without business", ErrInvalidMessage, m.ID)
	case m.User == "" && m.Country == "":
		return MessageCharge{}, fmt.Errorf("%w: message %s without user or country", ErrInvalidMessage, m.ID)
	case m.Country != "" && !validCountry(m.Country):
		return MessageCharge{}, fmt.Errorf("%w: message %s: country %q is not ISO alpha-2 upper case", ErrInvalidMessage, m.ID, m.Country)
	case m.At.IsZero() || m.At.Unix() <= 0:
		return MessageCharge{}, fmt.Errorf("%w: message %s without a time", ErrInvalidMessage, m.ID)
	}
	if m.Kind == "" {
		m.Kind = KindOther
	}
	country := m.Country
	if country == "" {
		country = CountryOf(m.User, m.User)
	}
	month := l.monthOf(m.At)
	return l.applyMessage(ctx, m.ID, func(prev pmState) pmState {
		if prev.Sent {
			return prev
		}
		next := prev
		next.Sent, next.Business, next.User, next.Kind = true, m.Business, m.User, string(m.Kind)
		next.Country, next.Month, next.Day = country, month, l.dayOf(m.At)
		next.Market = l.rc.For(month).MarketOf(country).ID
		next.sentAtMs = m.At.UnixMilli()
		return next
	})
}

// Status settles a message from its status webhook's pricing object:
// delivered or read and billable → charged once at the card's rate for its
// category and the user's market (graduated monthly tiers); not billable →
// counted free by pricing type; failed (before delivery) → never charged.
// A replayed or older status changes nothing; a status before Sent is kept
// and settles when Sent arrives.
func (l *Ledger) Status(ctx context.Context, s MessageStatus) (MessageCharge, error) {
	if s.ID == "" || len(s.ID) > 512 {
		return MessageCharge{}, fmt.Errorf("%w: message id must be 1..512 bytes", ErrInvalidMessage)
	}
	if s.Status.rank() == 0 {
		return MessageCharge{}, fmt.Errorf("%w: message %s: status %q (want sent, delivered, read or failed)", ErrInvalidMessage, s.ID, s.Status)
	}
	var cat Category
	if s.Category != "" {
		var ok bool
		if cat, ok = ParseCategory(s.Category); !ok {
			return MessageCharge{}, fmt.Errorf("%w: message %s: category %q", ErrInvalidMessage, s.ID, s.Category)
		}
	}
	typ := ""
	if s.Type != "" {
		t, ok := ParseCategory(s.Type)
		if !ok {
			return MessageCharge{}, fmt.Errorf("%w: message %s: pricing type %q", ErrInvalidMessage, s.ID, s.Type)
		}
		typ = string(t)
	}
	if len(s.PricingModel) > 32 {
		return MessageCharge{}, fmt.Errorf("%w: message %s: pricing model too long", ErrInvalidMessage, s.ID)
	}
	hasPricing := cat != "" || typ != "" || s.PricingModel != "" || s.Billable
	return l.applyMessage(ctx, s.ID, func(prev pmState) pmState {
		next := prev
		if s.Status.rank() > prev.Status.rank() { // failed ranks below delivered and read: it cannot undo them
			next.Status = s.Status
			next.StatusAtMs = s.At.UnixMilli()
		}
		if hasPricing && !prev.State.final() {
			next.hasPricing, next.Billable, next.PricingModel = true, s.Billable, s.PricingModel
			if typ != "" {
				next.Type = typ
			}
			if cat != "" {
				next.Category = cat
			}
		}
		return next
	})
}

// applyMessage reads the message, merges one event with merge, and writes
// the transition atomically (retrying when another writer got there first).
func (l *Ledger) applyMessage(ctx context.Context, id string, merge func(pmState) pmState) (MessageCharge, error) {
	key := l.k.pmsg(id)
	for attempt := 0; attempt < 8; attempt++ {
		h, err := l.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			l.metrics.LedgerWriteErrors.Inc()
			return MessageCharge{}, fmt.Errorf("%w: message %s: %w", ErrLedger, id, err)
		}
		prev := pmFromHash(h)
		next, deltas, charge := settle(prev, merge(prev))
		if next == prev {
			return prev.charge(id, true), nil
		}
		ks := []string{key}
		if next.Month != "" {
			ks = append(ks, l.k.month(next.Month), l.k.day(next.Day))
		} else {
			deltas, charge = nil, false
			ks = append(ks, key, key)
		}
		args := []any{prev.Ver, l.cfg.MessageDedupTTL.Milliseconds()}
		f := next.fields()
		args = append(args, len(f)/2)
		args = append(args, f...)
		args = append(args, len(deltas))
		for _, d := range deltas {
			args = append(args, d[0], d[1])
		}
		var tiers []MessageTier
		if charge {
			card := l.rc.For(next.Month)
			mk := card.Markets[next.Market]
			if mk == nil {
				mk = card.MarketOf(next.Country)
			}
			if ts := mk.Messages[next.Category]; len(ts) > 0 {
				tiers = ts
			} else {
				tiers = []MessageTier{{0, 0}}
				if card.MessagingModel == PerMessage {
					l.metrics.UnpricedMessages.Inc()
					l.log.LogAttrs(ctx, slog.LevelWarn, "billing: billable message of a category the rate card does not price; charged 0",
						slog.String("message_id", id), slog.String("category", string(next.Category)), slog.String("market", next.Market))
				}
			}
		}
		args = append(args, boolArg(charge), "pmt:"+next.Market+":"+next.catKey(), "pm:"+next.catKey()+":cost_micros",
			"msgs:"+next.Country+":count", "msgs:"+next.Country+":cost_micros", len(tiers))
		for _, t := range tiers {
			args = append(args, t.FromMessages, t.RateMicros)
		}
		res, err := messageScript.Run(ctx, l.rdb, ks, args...).Slice()
		if err != nil {
			l.metrics.LedgerWriteErrors.Inc()
			return MessageCharge{}, fmt.Errorf("%w: message %s: %w", ErrLedger, id, err)
		}
		if toInt64(res[0]) == 0 {
			continue // another writer changed it: read again
		}
		if charge {
			next.Cost, next.Tier = toInt64(res[1]), int(toInt64(res[2]))
		}
		ch := next.charge(id, false)
		if next.State != prev.State && next.State.final() {
			outcome := map[MessageState]string{MessageCharged: "charged", MessageFree: "free", MessageFailed: "failed"}[next.State]
			l.metrics.Messages.WithLabelValues(metricCategory(next.Category), outcome).Inc()
			if next.State == MessageCharged {
				l.metrics.MessageCostUSD.WithLabelValues(metricCategory(next.Category)).Add(float64(next.Cost) / 1e6)
			}
		}
		l.log.LogAttrs(ctx, slog.LevelDebug, "billing: message metered", slog.String("message_id", id),
			slog.String("user", phone.Mask(next.User)), slog.String("state", string(ch.State)),
			slog.String("category", string(ch.Category)), slog.Int64("cost_micros", ch.CostMicros))
		return ch, nil
	}
	return MessageCharge{}, fmt.Errorf("%w: message %s: too many concurrent updates", ErrLedger, id)
}

// metricCategory bounds the category label: unknown values become "other".
func metricCategory(c Category) string {
	for _, k := range MessageCategories {
		if c == k {
			return string(c)
		}
	}
	return "other"
}

func (s pmState) charge(id string, dup bool) MessageCharge {
	tier := s.Tier
	if s.State != MessageCharged {
		tier = -1
	}
	return MessageCharge{ID: id, State: s.State, Category: s.Category, Type: s.Type, Country: s.Country,
		Market: s.Market, CostMicros: s.Cost, Tier: tier, Duplicate: dup}
}

// GetMessage returns what is known about a metered message, or ErrNotFound.
func (l *Ledger) GetMessage(ctx context.Context, id string) (MessageCharge, error) {
	h, err := l.rdb.HGetAll(ctx, l.k.pmsg(id)).Result()
	if err != nil {
		return MessageCharge{}, fmt.Errorf("%w: message %s: %w", ErrLedger, id, err)
	}
	if len(h) == 0 {
		return MessageCharge{}, fmt.Errorf("%w: message %s", ErrNotFound, id)
	}
	return pmFromHash(h).charge(id, false), nil
}
