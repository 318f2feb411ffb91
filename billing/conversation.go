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

// Free reasons of a ConversationCharge.
const (
	FreeOpenWindow     = "open_window"      // inside an open conversation of the same category
	FreeTier           = "free_tier"        // a service conversation within the monthly free allowance
	FreeEntryPointFree = "free_entry_point" // inside a 72 h free-entry-point window
	// PendingPerMessage: the month's card prices per message; the message
	// was recorded with Sent and is charged when its status arrives.
	PendingPerMessage = "per_message_pending"
)

// Message is one business message to meter under the legacy
// conversation-based model.
//
// Deprecated: use Ledger.Sent and Ledger.Status (per-message pricing, Meta's
// model since 2025-07-01); Conversation remains for cards with
// "messaging_model": "conversation".
type Message struct {
	ID             string // wamid or any id unique per message: idempotency key
	Business       string // the business account (WABA id or phone number id)
	User           string // the user's number (wa_id or E.164)
	Category       Category
	At             time.Time
	FreeEntryPoint bool // the user came from a click-to-WhatsApp ad or Page button: opens a 72 h free window
}

// ConversationCharge is what a message cost.
type ConversationCharge struct {
	Opened     bool      `json:"opened"` // this message opened a conversation (or a free-entry-point window)
	Category   Category  `json:"category"`
	Free       bool      `json:"free"`
	FreeReason string    `json:"free_reason,omitempty"` // FreeOpenWindow, FreeTier, FreeEntryPointFree
	CostMicros int64     `json:"cost_micros"`
	WindowEnds time.Time `json:"window_ends"`
}

// conversationScript meters one message atomically.
//
// KEYS: 1 message dedup hash, 2 window hash (business+user), 3 month hash,
// 4 free-service counter (business, month)
// ARGV: 1 category, 2 at (unix ms), 3 at+conversation window, 4 at+free
// entry point window, 5 free entry point "1"/"0", 6 free service allowance,
// 7 cost if charged, 8 country, 9 dedup ttl ms, 10 free counter ttl ms
var conversationScript = redis.NewScript(`
local prev = redis.call('HGETALL', KEYS[1])
if #prev > 0 then
  return {0, prev}
end
local cat = ARGV[1]
local at = tonumber(ARGV[2])
local opened, free, reason, cost, ends = '0', '1', '', '0', ''
local fep = redis.call('HGET', KEYS[2], 'fep')
if fep and at < tonumber(fep) then
  reason, ends = 'free_entry_point', fep
elseif ARGV[5] == '1' then
  opened, reason, ends = '1', 'free_entry_point', ARGV[4]
  redis.call('HSET', KEYS[2], 'fep', ends)
else
  local win = redis.call('HGET', KEYS[2], 'w:' .. cat)
  if win and at < tonumber(win) then
    reason, ends = 'open_window', win
  else
    opened, ends = '1', ARGV[3]
    redis.call('HSET', KEYS[2], 'w:' .. cat, ends)
    if cat == 'service' then
      local used = redis.call('INCR', KEYS[4])
      if used == 1 then
        redis.call('PEXPIRE', KEYS[4], ARGV[10])
      end
      if used <= tonumber(ARGV[6]) then
        reason = 'free_tier'
      else
        free, cost = '0', ARGV[7]
      end
    else
      free, cost = '0', ARGV[7]
    end
  end
end
if opened == '1' then
  local p = 'conv:' .. ARGV[8] .. ':' .. cat .. ':'
  redis.call('HINCRBY', KEYS[3], p .. 'opened', 1)
  if free == '0' then
    redis.call('HINCRBY', KEYS[3], p .. 'charged', 1)
    redis.call('HINCRBY', KEYS[3], p .. 'cost_micros', cost)
  end
  local last = at
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
    if tonumber(v) > last then last = tonumber(v) end
  end
  redis.call('PEXPIRE', KEYS[2], math.floor(last - at) + 86400000)
end
redis.call('HSET', KEYS[1], 'opened', opened, 'cat', cat, 'free', free, 'reason', reason, 'cost', cost, 'ends', ends)
redis.call('PEXPIRE', KEYS[1], ARGV[9])
return {1, opened, free, reason, cost, ends}
`)

// Conversation meters one business message under the seed's
// conversation-based pricing: a message opens a conversation of its
// category for ConversationWindow (24 h) unless one of that category is
// open; further messages of the same category inside it are free
// ("open_window"); another category opens a new charge. Service
// conversations are free for the first FreeServiceConversationsPerMonth of
// the business each month ("free_tier"). A FreeEntryPoint message opens a
// FreeEntryPointWindow (72 h) in which everything is free and no other
// conversation opens ("free_entry_point"). Rates come from the user's
// country. The same message id metered twice returns the first charge and
// changes nothing; a bad message returns ErrInvalidMessage.
//
// When the card in force in the message's month prices per message, the
// message is recorded with Sent instead (pending until Status settles it)
// and the charge says FreeReason PendingPerMessage.
//
// Deprecated: call Sent and Status; see Message.
func (l *Ledger) Conversation(ctx context.Context, m Message) (ConversationCharge, error) {
	switch {
	case m.ID == "":
		return ConversationCharge{}, fmt.Errorf("%w: empty id", ErrInvalidMessage)
	case m.Business == "":
		return ConversationCharge{}, fmt.Errorf("%w: message %s without business", ErrInvalidMessage, m.ID)
	case m.User == "":
		return ConversationCharge{}, fmt.Errorf("%w: message %s without user", ErrInvalidMessage, m.ID)
	case !m.Category.Valid():
		return ConversationCharge{}, fmt.Errorf("%w: message %s: unknown category %q", ErrInvalidMessage, m.ID, m.Category)
	case m.At.IsZero() || m.At.Unix() <= 0:
		return ConversationCharge{}, fmt.Errorf("%w: message %s without a time", ErrInvalidMessage, m.ID)
	}
	country := CountryOf(m.User, m.User)
	user := m.User
	if n, err := phone.Parse(m.User); err == nil {
		user = n.Digits
	}
	month := l.monthOf(m.At)
	card := l.rc.For(month)
	if card.MessagingModel == PerMessage {
		ch, err := l.Sent(ctx, MessageSent{ID: m.ID, Business: m.Business, User: m.User, At: m.At, Kind: KindOther})
		if err != nil {
			return ConversationCharge{}, err
		}
		return ConversationCharge{Category: m.Category, FreeReason: PendingPerMessage, CostMicros: ch.CostMicros}, nil
	}
	at := m.At.UnixMilli()
	ks := []string{l.k.msg(m.ID), l.k.window(m.Business, user), l.k.month(month), l.k.freeTier(month, m.Business)}
	args := []any{string(m.Category), at, at + card.ConversationWindow.Milliseconds(), at + card.FreeEntryPointWindow.Milliseconds(),
		boolArg(m.FreeEntryPoint), card.FreeServiceConversationsPerMonth, card.MarketOf(country).ConversationRates[m.Category], country,
		l.cfg.MessageDedupTTL.Milliseconds(), (62 * 24 * time.Hour).Milliseconds()}
	res, err := conversationScript.Run(ctx, l.rdb, ks, args...).Slice()
	if err != nil {
		l.metrics.LedgerWriteErrors.Inc()
		return ConversationCharge{}, fmt.Errorf("%w: conversation %s: %w", ErrLedger, m.ID, err)
	}
	var f map[string]string
	created := len(res) == 6
	switch {
	case len(res) == 2:
		f = pairs(res[1])
	case created:
		f = map[string]string{"opened": fmt.Sprint(res[1]), "free": fmt.Sprint(res[2]), "reason": fmt.Sprint(res[3]),
			"cost": fmt.Sprint(res[4]), "ends": fmt.Sprint(res[5]), "cat": string(m.Category)}
	default:
		l.metrics.LedgerWriteErrors.Inc()
		return ConversationCharge{}, fmt.Errorf("%w: conversation %s: unexpected script reply %v", ErrLedger, m.ID, res)
	}
	ch := ConversationCharge{Opened: f["opened"] == "1", Category: Category(f["cat"]), Free: f["free"] == "1", FreeReason: f["reason"]}
	if ch.CostMicros, err = strconv.ParseInt(f["cost"], 10, 64); err != nil {
		return ConversationCharge{}, fmt.Errorf("%w: conversation %s cost: %w", ErrLedger, m.ID, err)
	}
	ends, err := strconv.ParseInt(f["ends"], 10, 64)
	if err != nil {
		return ConversationCharge{}, fmt.Errorf("%w: conversation %s window: %w", ErrLedger, m.ID, err)
	}
	ch.WindowEnds = time.UnixMilli(ends).UTC()
	if !created {
		l.metrics.DuplicateConversations.Inc()
		return ch, nil
	}
	if ch.Opened {
		l.metrics.Conversations.WithLabelValues(string(m.Category), strconv.FormatBool(!ch.Free)).Inc()
	}
	l.log.LogAttrs(ctx, slog.LevelDebug, "billing: message metered", slog.String("message_id", m.ID),
		slog.String("user", phone.Mask(m.User)), slog.String("category", string(m.Category)),
		slog.Bool("opened", ch.Opened), slog.Bool("free", ch.Free), slog.Int64("cost_micros", ch.CostMicros))
	return ch, nil
}
