package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/webhook"
)

// store keeps what must outlive this process or be shared between instances:
// webhook de-duplication, live call records, the accept claim, tombstones of
// ended calls and the set of ended calls not yet in the ledger. Keys of one
// call share the hash tag {<call id>}.
type store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration // dedup and tombstone lifetime (Meta retries for 7 days)
}

func (s *store) key(id call.ID, what string) string {
	return s.prefix + "call:{" + string(id) + "}:" + what
}

func (s *store) unrecordedKey() string { return s.prefix + "unrecorded" }

func storeErr(op string, err error) error { return fmt.Errorf("%w: %s: %w", ErrStore, op, err) }

// firstDelivery reports whether (id, event) is seen for the first time.
// SET NX makes it atomic across instances.
func (s *store) firstDelivery(ctx context.Context, id call.ID, event, detail string) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.key(id, "dedup:"+event+detail), 1, s.ttl).Result()
	if err != nil {
		return false, storeErr("dedup", err)
	}
	return ok, nil
}

// forgetDelivery undoes firstDelivery when applying the event failed, so that
// Meta's retry is applied.
func (s *store) forgetDelivery(ctx context.Context, id call.ID, event, detail string) {
	_ = s.rdb.Del(ctx, s.key(id, "dedup:"+event+detail)).Err()
}

type storedCall struct {
	Record call.Record      `json:"record"`
	State  string           `json:"state"`
	Owner  string           `json:"owner"`
	Info   *agents.CallInfo `json:"info,omitempty"`      // what agents see, for other instances
	Await  time.Time        `json:"await_meta,omitzero"` // ended by a reaper: wait for Meta's terminate until then
}

// save writes the live call record.
func (s *store) save(ctx context.Context, rec call.Record, st State, owner string, info *agents.CallInfo) error {
	b, err := json.Marshal(storedCall{Record: rec, State: st.String(), Owner: owner, Info: info})
	if err != nil {
		return fmt.Errorf("signaling: marshal call: %w", err)
	}
	if err := s.rdb.Set(ctx, s.key(rec.ID, "state"), b, s.ttl).Err(); err != nil {
		return storeErr("save call", err)
	}
	return nil
}

// load reads a call record saved by save or markEnded.
func (s *store) load(ctx context.Context, id call.ID) (*storedCall, error) {
	b, err := s.rdb.Get(ctx, s.key(id, "state")).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrUnknownCall
	}
	if err != nil {
		return nil, storeErr("load call", err)
	}
	var sc storedCall
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("signaling: stored call %s: %w", id, err)
	}
	return &sc, nil
}

// claim is first-accept-wins across instances.
func (s *store) claim(ctx context.Context, id call.ID, agent string) (won bool, holder string, err error) {
	ok, err := s.rdb.SetNX(ctx, s.key(id, "claim"), agent, s.ttl).Result()
	if err != nil {
		return false, "", storeErr("claim", err)
	}
	if ok {
		return true, agent, nil
	}
	holder, err = s.rdb.Get(ctx, s.key(id, "claim")).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, "", storeErr("claim holder", err)
	}
	return holder == agent, holder, nil
}

// unclaim frees the accept claim of a call that waits again, so that the
// next agent's claim can win.
func (s *store) unclaim(ctx context.Context, id call.ID) error {
	if err := s.rdb.Del(ctx, s.key(id, "claim")).Err(); err != nil {
		return storeErr("unclaim", err)
	}
	return nil
}

// ended reports whether a tombstone exists for id.
func (s *store) ended(ctx context.Context, id call.ID) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.key(id, "ended")).Result()
	if err != nil {
		return false, storeErr("tombstone", err)
	}
	return n == 1, nil
}

// markEnded writes the tombstone and the final record, and adds the call to
// the set of records the ledger has not confirmed, in one transaction.
func (s *store) markEnded(ctx context.Context, rec call.Record, owner string) error {
	return s.markEndedAwaiting(ctx, rec, owner, time.Time{})
}

// markEndedAwaiting is markEnded for a record that should wait until await
// for Meta's terminate webhook before it goes to the ledger.
func (s *store) markEndedAwaiting(ctx context.Context, rec call.Record, owner string, await time.Time) error {
	b, err := json.Marshal(storedCall{Record: rec, State: StateEnded.String(), Owner: owner, Await: await})
	if err != nil {
		return fmt.Errorf("signaling: marshal call: %w", err)
	}
	// The unrecorded set lives in another Cluster slot than the call's keys:
	// add to it first (a member whose state is not ended yet is skipped),
	// then write tombstone and state together.
	if err := s.rdb.SAdd(ctx, s.unrecordedKey(), string(rec.ID)).Err(); err != nil {
		return storeErr("mark ended", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.key(rec.ID, "ended"), 1, s.ttl)
		p.Set(ctx, s.key(rec.ID, "state"), b, s.ttl)
		return nil
	})
	if err != nil {
		return storeErr("mark ended", err)
	}
	return nil
}

// recorded removes id from the unrecorded set once the ledger has it.
func (s *store) recorded(ctx context.Context, id call.ID) error {
	if err := s.rdb.SRem(ctx, s.unrecordedKey(), string(id)).Err(); err != nil {
		return storeErr("recorded", err)
	}
	return nil
}

// unrecorded returns ended calls whose record the ledger has not confirmed.
func (s *store) unrecorded(ctx context.Context, max int64) ([]call.Record, error) {
	ids, err := s.rdb.SRandMemberN(ctx, s.unrecordedKey(), max).Result()
	if err != nil {
		return nil, storeErr("unrecorded", err)
	}
	out := make([]call.Record, 0, len(ids))
	for _, id := range ids {
		sc, err := s.load(ctx, call.ID(id))
		if errors.Is(err, ErrUnknownCall) {
			_ = s.recorded(ctx, call.ID(id)) // expired: nothing left to record
			continue
		}
		if err != nil {
			return out, err
		}
		if sc.State == StateEnded.String() && !time.Now().Before(sc.Await) {
			out = append(out, sc.Record)
		}
	}
	return out, nil
}

func (s *store) earlyIndexKey() string { return s.prefix + "early" }

// pushEarly keeps an event for a call nobody owns yet, and indexes the call
// by the time of its first early event (see earlyDue).
func (s *store) pushEarly(ctx context.Context, id call.ID, ev webhook.Event, now time.Time) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("signaling: marshal event: %w", err)
	}
	// The index lives in another Cluster slot: add to it first.
	if err := s.rdb.ZAddNX(ctx, s.earlyIndexKey(), redis.Z{Score: float64(now.Unix()), Member: string(id)}).Err(); err != nil {
		return storeErr("early", err)
	}
	k := s.key(id, "early")
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, k, b)
		p.Expire(ctx, k, s.ttl)
		return nil
	})
	if err != nil {
		return storeErr("early", err)
	}
	return nil
}

// earlyDue lists the calls whose early events are older than before.
func (s *store) earlyDue(ctx context.Context, before time.Time) ([]call.ID, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.earlyIndexKey(), &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(before.Unix(), 10), Count: 100}).Result()
	if err != nil {
		return nil, storeErr("early", err)
	}
	out := make([]call.ID, len(ids))
	for i, id := range ids {
		out[i] = call.ID(id)
	}
	return out, nil
}

// earlyDone drops a call from the early index.
func (s *store) earlyDone(ctx context.Context, id call.ID) error {
	if err := s.rdb.ZRem(ctx, s.earlyIndexKey(), string(id)).Err(); err != nil {
		return storeErr("early", err)
	}
	return nil
}

// popEarly takes the events kept by pushEarly.
func (s *store) popEarly(ctx context.Context, id call.ID) ([]webhook.Event, error) {
	return s.takeEvents(ctx, s.key(id, "early"), "early")
}

// takeEvents reads and deletes a list of events in one transaction.
func (s *store) takeEvents(ctx context.Context, k, op string) ([]webhook.Event, error) {
	var get *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.LRange(ctx, k, 0, -1)
		p.Del(ctx, k)
		return nil
	})
	if err != nil {
		return nil, storeErr(op, err)
	}
	var out []webhook.Event
	for _, b := range get.Val() {
		var ev webhook.Event
		if json.Unmarshal([]byte(b), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (s *store) countPermission(ctx context.Context, month, outcome string) error {
	return s.rdb.HIncrBy(ctx, s.prefix+"permreq:"+month, outcome, 1).Err()
}

func (s *store) permissionOutcomes(ctx context.Context, month string) (map[string]int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.prefix+"permreq:"+month).Result()
	if err != nil {
		return nil, storeErr("permission outcomes", err)
	}
	out := map[string]int64{"sent": 0, "accepted": 0, "rejected": 0}
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		out[k] = n
	}
	return out, nil
}

// watcher is an agent following a user's permission, and whether that agent
// knows the number masked (a call back of a masked caller).
type watcher struct {
	Agent  string `json:"agent"`
	Masked bool   `json:"masked,omitempty"`
}

// watchPermission records that w follows user's permission (7 days).
func (s *store) watchPermission(ctx context.Context, user string, w watcher) error {
	b, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("signaling: marshal watcher: %w", err)
	}
	k := s.prefix + "permwatch:{" + user + "}"
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, k, b)
		p.Expire(ctx, k, 7*24*time.Hour)
		return nil
	})
	if err != nil {
		return storeErr("permission watch", err)
	}
	return nil
}

// permissionWatchers returns the agents following user's permission.
func (s *store) permissionWatchers(ctx context.Context, user string) ([]watcher, error) {
	m, err := s.rdb.SMembers(ctx, s.prefix+"permwatch:{"+user+"}").Result()
	if err != nil {
		return nil, storeErr("permission watch", err)
	}
	out := make([]watcher, 0, len(m))
	for _, v := range m {
		var w watcher
		if json.Unmarshal([]byte(v), &w) == nil && w.Agent != "" {
			out = append(out, w)
		}
	}
	return out, nil
}

// saveSettings keeps a number's calling settings as Meta last reported them.
func (s *store) saveSettings(ctx context.Context, pnid string, calling json.RawMessage) error {
	if len(calling) == 0 {
		return nil
	}
	if err := s.rdb.Set(ctx, s.prefix+"settings:{"+pnid+"}", []byte(calling), 0).Err(); err != nil {
		return storeErr("settings", err)
	}
	return nil
}

// settings returns a number's calling settings as Meta last reported them
// (nil when never seen).
func (s *store) settings(ctx context.Context, pnid string) (json.RawMessage, error) {
	b, err := s.rdb.Get(ctx, s.prefix+"settings:{"+pnid+"}").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr("settings", err)
	}
	return b, nil
}

// msgKind says what a message we sent was.
type msgKind uint8

const (
	msgUnknown msgKind = iota
	msgPermissionRequest
	msgCallButton
)

// sentMessage is a message we sent, kept until Meta says what became of it.
type sentMessage struct {
	Kind      msgKind `json:"kind"`
	Business  string  `json:"business"`
	User      string  `json:"user"`
	RequestID string  `json:"request_id,omitempty"`
}

func (s *store) msgKey(wamid string) string { return s.prefix + "msg:{" + wamid + "}" }

// trackMessage remembers a message we sent (7 days, Meta's retry horizon).
func (s *store) trackMessage(ctx context.Context, wamid string, m sentMessage) error {
	if wamid == "" {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("signaling: marshal message: %w", err)
	}
	if err := s.rdb.Set(ctx, s.msgKey(wamid), b, s.ttl).Err(); err != nil {
		return storeErr("track message", err)
	}
	return nil
}

// trackedMessage returns a message we sent, or nil when it is not ours.
func (s *store) trackedMessage(ctx context.Context, wamid string) (*sentMessage, error) {
	b, err := s.rdb.Get(ctx, s.msgKey(wamid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr("tracked message", err)
	}
	var m sentMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("signaling: stored message %s: %w", wamid, err)
	}
	return &m, nil
}

// parkMessageStatus keeps the status of a message we do not know (yet) for
// ten minutes: our own request's status can beat Meta's answer to it.
func (s *store) parkMessageStatus(ctx context.Context, ev webhook.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("signaling: marshal status: %w", err)
	}
	k := s.prefix + "msgearly:{" + ev.MessageStatus.MessageID + "}"
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, k, b)
		p.Expire(ctx, k, 10*time.Minute)
		return nil
	})
	if err != nil {
		return storeErr("park status", err)
	}
	return nil
}

// parkedMessageStatuses takes the statuses parked for wamid.
func (s *store) parkedMessageStatuses(ctx context.Context, wamid string) ([]webhook.Event, error) {
	evs, err := s.takeEvents(ctx, s.prefix+"msgearly:{"+wamid+"}", "parked statuses")
	out := evs[:0]
	for _, ev := range evs {
		if ev.MessageStatus != nil {
			out = append(out, ev)
		}
	}
	return out, err
}
