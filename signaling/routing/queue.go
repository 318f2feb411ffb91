package routing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
)

// Entry is a queued call.
type Entry struct {
	Call     call.ID
	Team     TeamID
	Since    time.Time     // when it was queued
	Owner    string        // instance that queued it (owns the call and its media)
	Position int           // 1 = next to be served (Snapshot, Enqueue)
	Wait     time.Duration // now − Since (Snapshot)
}

// Expiry is a call Expired took out of a queue after max_wait.
type Expiry struct {
	Call     call.ID
	Team     TeamID    // the queue it left
	Since    time.Time // when it was queued there
	Overflow TeamID    // the team's overflow: try it next; "" = the call is missed
}

// A queue is a sorted set (member call id, score queued-at in µs: ties by
// id) and a hash call id → owner instance, both in the team's slot.
var enqueueScript = redis.NewScript(`
local r = redis.call('ZRANK', KEYS[1], ARGV[1])
if r then return r + 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
`)

// Enqueue puts callID (owned by this instance) at the end of team's queue,
// queued at at, and returns its position (1 = next). Queuing a call
// already there changes nothing and returns its position. ErrQueueFull
// when the queue holds max_size calls (max_size 0: the team has no queue).
func (r *Router) Enqueue(ctx context.Context, team TeamID, callID call.ID, at time.Time) (int, error) {
	t, err := r.team(team)
	if err != nil {
		return 0, err
	}
	if !validID(string(callID)) || at.IsZero() {
		return 0, fmt.Errorf("%w: enqueue %q at %v", ErrInvalidArgument, callID, at)
	}
	pos, err := enqueueScript.Run(ctx, r.rdb, []string{r.queueKey(team), r.ownerKey(team)},
		string(callID), micros(at), t.MaxSize, r.instance).Int()
	if err != nil {
		return 0, r.redisErr("enqueue", err)
	}
	if pos < 0 {
		r.m.queued.WithLabelValues(string(team), "full").Inc()
		return 0, fmt.Errorf("%w: team %s (max %d)", ErrQueueFull, team, t.MaxSize)
	}
	r.m.queued.WithLabelValues(string(team), "queued").Inc()
	return pos, nil
}

// Position returns callID's place in team's queue (1 = next);
// ErrNotQueued when it is not there.
func (r *Router) Position(ctx context.Context, team TeamID, callID call.ID) (int, error) {
	if _, err := r.team(team); err != nil {
		return 0, err
	}
	rank, err := r.rdb.ZRank(ctx, r.queueKey(team), string(callID)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("%w: %s in %s", ErrNotQueued, callID, team)
	}
	if err != nil {
		return 0, r.redisErr("position", err)
	}
	return int(rank) + 1, nil
}

var popScript = redis.NewScript(`
local e = redis.call('ZPOPMIN', KEYS[1])
if #e == 0 then return {} end
local owner = redis.call('HGET', KEYS[2], e[1]) or ''
redis.call('HDEL', KEYS[2], e[1])
return {e[1], e[2], owner}
`)

var removeScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return {} end
redis.call('ZREM', KEYS[1], ARGV[1])
local owner = redis.call('HGET', KEYS[2], ARGV[1]) or ''
redis.call('HDEL', KEYS[2], ARGV[1])
return {ARGV[1], s, owner}
`)

func entryOf(team TeamID, v []any) (Entry, bool) {
	if len(v) != 3 {
		return Entry{}, false
	}
	id, _ := v[0].(string)
	score, _ := v[1].(string)
	owner, _ := v[2].(string)
	us, err := strconv.ParseFloat(score, 64)
	if err != nil {
		return Entry{}, false
	}
	return Entry{Call: call.ID(id), Team: team, Since: fromMicros(int64(us)), Owner: owner}, true
}

// Dequeue takes the longest-waiting call of team. ErrQueueEmpty when none.
// The Entry's Owner is the instance holding the call: if it is not this
// one, the caller hands the agent over to it.
func (r *Router) Dequeue(ctx context.Context, team TeamID) (Entry, error) {
	if _, err := r.team(team); err != nil {
		return Entry{}, err
	}
	v, err := popScript.Run(ctx, r.rdb, []string{r.queueKey(team), r.ownerKey(team)}).Slice()
	if err != nil {
		return Entry{}, r.redisErr("dequeue", err)
	}
	e, ok := entryOf(team, v)
	if !ok {
		return Entry{}, fmt.Errorf("%w: team %s", ErrQueueEmpty, team)
	}
	r.served(e)
	return e, nil
}

func (r *Router) served(e Entry) {
	r.m.dequeued.WithLabelValues(string(e.Team)).Inc()
	if w := r.clk.Now().Sub(e.Since); w >= 0 {
		r.m.wait.WithLabelValues(string(e.Team)).Observe(w.Seconds())
	}
}

// DequeueFor takes, for an agent who just became free, the longest-waiting
// call across every team the agent belongs to (each team's head compared;
// a head taken meanwhile by another instance is skipped). ErrQueueEmpty
// when all are empty.
func (r *Router) DequeueFor(ctx context.Context, agent AgentID) (Entry, error) {
	teams := r.cfg.Load().TeamsOf(agent)
	for attempt := 0; attempt < 8; attempt++ {
		var best *Entry
		for _, team := range teams {
			zs, err := r.rdb.ZRangeWithScores(ctx, r.queueKey(team), 0, 0).Result()
			if err != nil {
				return Entry{}, r.redisErr("dequeue_for", err)
			}
			if len(zs) == 0 {
				continue
			}
			e := Entry{Call: call.ID(zs[0].Member.(string)), Team: team, Since: fromMicros(int64(zs[0].Score))}
			if best == nil || e.Since.Before(best.Since) {
				best = &e
			}
		}
		if best == nil {
			return Entry{}, fmt.Errorf("%w: teams of %s", ErrQueueEmpty, agent)
		}
		v, err := removeScript.Run(ctx, r.rdb, []string{r.queueKey(best.Team), r.ownerKey(best.Team)}, string(best.Call)).Slice()
		if err != nil {
			return Entry{}, r.redisErr("dequeue_for", err)
		}
		if e, ok := entryOf(best.Team, v); ok {
			r.served(e)
			return e, nil
		}
		// Another instance took it first: look again.
	}
	return Entry{}, fmt.Errorf("%w: teams of %s (contended)", ErrQueueEmpty, agent)
}

// Remove takes callID out of team's queue (the caller hung up, or an agent
// was found another way). ErrNotQueued when it was not there.
func (r *Router) Remove(ctx context.Context, team TeamID, callID call.ID) error {
	if _, err := r.team(team); err != nil {
		return err
	}
	v, err := removeScript.Run(ctx, r.rdb, []string{r.queueKey(team), r.ownerKey(team)}, string(callID)).Slice()
	if err != nil {
		return r.redisErr("remove", err)
	}
	if len(v) == 0 {
		return fmt.Errorf("%w: %s in %s", ErrNotQueued, callID, team)
	}
	r.m.left.WithLabelValues(string(team), "removed").Inc()
	return nil
}

// expireScript takes out the calls of this instance (ARGV[2]) queued at or
// before ARGV[1], and those of any instance queued at or before ARGV[3]
// (stale: their owner is gone). Returns flat {id, score, stale(0|1)}.
var expireScript = redis.NewScript(`
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
for i = 1, #due, 2 do
  local id, s = due[i], due[i+1]
  local owner = redis.call('HGET', KEYS[2], id)
  local stale = tonumber(s) <= tonumber(ARGV[3])
  if owner == ARGV[2] or stale then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    out[#out+1] = id
    out[#out+1] = s
    if owner == ARGV[2] then out[#out+1] = 0 else out[#out+1] = 1 end
  end
end
return out
`)

// Expired takes out of every queue the calls of this instance that have
// waited max_wait or more at now, oldest first per team, and returns them
// with the overflow team to try next ("" = missed: create a callback
// task). Each expired call is returned once, to its owner. Calls of other
// instances still queued StaleGrace after their max_wait are dropped
// (their instance is gone) and counted as stale, not returned. Run it on a
// ticker (every second is plenty). Teams with max_wait 0 never expire.
func (r *Router) Expired(ctx context.Context, now time.Time) ([]Expiry, error) {
	var out []Expiry
	for _, t := range r.cfg.Load().Teams {
		if t.MaxWait <= 0 {
			continue
		}
		v, err := expireScript.Run(ctx, r.rdb, []string{r.queueKey(t.ID), r.ownerKey(t.ID)},
			micros(now.Add(-t.MaxWait)), r.instance, micros(now.Add(-t.MaxWait-r.stale))).Slice()
		if err != nil {
			return out, r.redisErr("expired", err)
		}
		for i := 0; i+2 < len(v); i += 3 {
			id, _ := v[i].(string)
			score, _ := v[i+1].(string)
			stale, _ := v[i+2].(int64)
			if stale == 1 {
				r.m.left.WithLabelValues(string(t.ID), "stale").Inc()
				r.log.Warn("dropped a queued call of a gone instance", "team", t.ID, "call", id)
				continue
			}
			us, _ := strconv.ParseFloat(score, 64)
			r.m.left.WithLabelValues(string(t.ID), "expired").Inc()
			out = append(out, Expiry{Call: call.ID(id), Team: t.ID, Since: fromMicros(int64(us)), Overflow: t.Overflow})
		}
	}
	return out, nil
}

// Snapshot lists team's queue in order for supervisors: position, owner,
// queued-at and wait at now.
func (r *Router) Snapshot(ctx context.Context, team TeamID, now time.Time) ([]Entry, error) {
	if _, err := r.team(team); err != nil {
		return nil, err
	}
	zs, err := r.rdb.ZRangeWithScores(ctx, r.queueKey(team), 0, -1).Result()
	if err != nil {
		return nil, r.redisErr("snapshot", err)
	}
	owners, err := r.rdb.HGetAll(ctx, r.ownerKey(team)).Result()
	if err != nil {
		return nil, r.redisErr("snapshot", err)
	}
	out := make([]Entry, len(zs))
	for i, z := range zs {
		id := z.Member.(string)
		since := fromMicros(int64(z.Score))
		out[i] = Entry{Call: call.ID(id), Team: team, Since: since, Owner: owners[id], Position: i + 1, Wait: max(now.Sub(since), 0)}
	}
	return out, nil
}

// SnapshotAll is Snapshot of every team in the configuration.
func (r *Router) SnapshotAll(ctx context.Context, now time.Time) (map[TeamID][]Entry, error) {
	out := map[TeamID][]Entry{}
	for _, id := range r.cfg.Load().TeamIDs() {
		s, err := r.Snapshot(ctx, id, now)
		if err != nil {
			return out, err
		}
		out[id] = s
	}
	return out, nil
}
