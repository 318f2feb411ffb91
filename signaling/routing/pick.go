package routing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
)

// pickScript picks among candidates (KEYS[3..] their reservation keys,
// ARGV[4..] their ids, in ring order) atomically in the agents slot.
// KEYS[1] round-robin cursor, KEYS[2] idle-since zset.
// ARGV[1] mode (all|rr|idle), ARGV[2] call id, ARGV[3] lease ms; for rr the
// ids are followed by their sort keys.
// ring_all returns every candidate not reserved by another call and
// reserves nothing; rr and idle reserve the one they return.
var pickScript = redis.NewScript(`
local mode, callid, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = #KEYS - 2
local function free(i)
  local v = redis.call('GET', KEYS[i+2])
  return (not v) or v == callid
end
local function take(i)
  redis.call('SET', KEYS[i+2], callid, 'PX', ttl)
  return {ARGV[i+3]}
end
if mode == 'all' then
  local out = {}
  for i = 1, n do if free(i) then out[#out+1] = ARGV[i+3] end end
  return out
elseif mode == 'rr' then
  local cursor = redis.call('GET', KEYS[1]) or ''
  local start = 1
  for i = 1, n do
    if ARGV[n+i+3] > cursor then start = i break end
    if i == n then start = 1 end
  end
  for k = 0, n-1 do
    local i = ((start - 1 + k) % n) + 1
    if free(i) then
      redis.call('SET', KEYS[1], ARGV[n+i+3])
      return take(i)
    end
  end
  return {}
else
  local best, bestScore = nil, nil
  for i = 1, n do
    if free(i) then
      local s = redis.call('ZSCORE', KEYS[2], ARGV[i+3])
      local score
      if not s then score = -1 else score = tonumber(s) end
      if best == nil or score < bestScore then best, bestScore = i, score end
    end
  end
  if best == nil then return {} end
  return take(best)
end
`)

// Pick chooses whom to ring for callID in team, among available (the
// agents signed in and not in a call, from the caller's view) minus
// exclude (agents already tried for this call), keeping only team members
// that no other call has reserved:
//   - ring_all: every such member, in team order; nothing is reserved.
//   - round_robin: the next such member after the team's last pick
//     (team order; for a "*" team, id order), reserved for callID.
//   - longest_idle: the such member idle longest (never freed while
//     tracked = idle longest; busy = last), reserved for callID.
//
// A reservation lasts the team's ring time plus ReserveMargin; Release it
// when the agent declines or times out, and after they accept (the agent
// is then busy: AgentBusy). ErrNoAgent when nobody qualifies.
func (r *Router) Pick(ctx context.Context, team TeamID, callID call.ID, available, exclude []AgentID) ([]AgentID, error) {
	t, err := r.team(team)
	if err != nil {
		return nil, err
	}
	if !validID(string(callID)) {
		return nil, fmt.Errorf("%w: call id %q", ErrInvalidArgument, callID)
	}
	cands := candidates(t, available, exclude)
	if len(cands) == 0 {
		r.m.picks.WithLabelValues(string(team), t.Strategy.String(), "none").Inc()
		return nil, fmt.Errorf("%w: team %s", ErrNoAgent, team)
	}
	keys := []string{r.cursorKey(team), r.idleKey()}
	args := []any{"all", string(callID), (t.RingTime + r.margin).Milliseconds()}
	switch t.Strategy {
	case config.RoundRobin:
		args[0] = "rr"
	case config.LongestIdle:
		args[0] = "idle"
	}
	for _, c := range cands {
		keys = append(keys, r.reserveKey(c.id))
		args = append(args, string(c.id))
	}
	if t.Strategy == config.RoundRobin {
		for _, c := range cands {
			args = append(args, c.sortKey)
		}
	}
	res, err := pickScript.Run(ctx, r.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, r.redisErr("pick", err)
	}
	if len(res) == 0 {
		r.m.picks.WithLabelValues(string(team), t.Strategy.String(), "none").Inc()
		return nil, fmt.Errorf("%w: team %s (all reserved)", ErrNoAgent, team)
	}
	r.m.picks.WithLabelValues(string(team), t.Strategy.String(), "picked").Inc()
	out := make([]AgentID, len(res))
	for i, s := range res {
		out[i] = AgentID(s)
	}
	return out, nil
}

type candidate struct {
	id      AgentID
	sortKey string // zero-padded rank in the team, then id: string order = ring order
}

// candidates is available ∩ members − exclude, deduplicated, in ring order.
func candidates(t config.Team, available, exclude []AgentID) []candidate {
	rank := map[AgentID]int{}
	for i, a := range t.Agents {
		rank[a] = i
	}
	seen := map[AgentID]bool{}
	var out []candidate
	for _, a := range available {
		if a == "" || a == config.AnyAgent || seen[a] || slices.Contains(exclude, a) || !t.Has(a) || !validID(string(a)) {
			continue
		}
		seen[a] = true
		out = append(out, candidate{id: a, sortKey: fmt.Sprintf("%06d:%s", rank[a], a)})
	}
	slices.SortFunc(out, func(x, y candidate) int {
		switch {
		case x.sortKey < y.sortKey:
			return -1
		case x.sortKey > y.sortKey:
			return 1
		}
		return 0
	})
	return out
}

// Reserve holds agent for callID for ttl (an agent chosen by other means,
// e.g. a transfer). Reserving again for the same call extends the lease;
// ErrAgentReserved when another call holds it.
func (r *Router) Reserve(ctx context.Context, agent AgentID, callID call.ID, ttl time.Duration) error {
	if !validID(string(agent)) || !validID(string(callID)) || ttl <= 0 {
		return fmt.Errorf("%w: reserve %q for %q (%v)", ErrInvalidArgument, agent, callID, ttl)
	}
	res, err := reserveScript.Run(ctx, r.rdb, []string{r.reserveKey(agent)}, string(callID), ttl.Milliseconds()).Int()
	if err != nil {
		return r.redisErr("reserve", err)
	}
	if res == 0 {
		return fmt.Errorf("%w: %s", ErrAgentReserved, agent)
	}
	return nil
}

var reserveScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Release frees agent's reservation for callID; ErrNotReserved when it is
// not held by that call (expired or another call's: left alone).
func (r *Router) Release(ctx context.Context, agent AgentID, callID call.ID) error {
	if !validID(string(agent)) || !validID(string(callID)) {
		return fmt.Errorf("%w: release %q for %q", ErrInvalidArgument, agent, callID)
	}
	n, err := releaseScript.Run(ctx, r.rdb, []string{r.reserveKey(agent)}, string(callID)).Int()
	if err != nil {
		return r.redisErr("release", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s for %s", ErrNotReserved, agent, callID)
	}
	return nil
}

// ReservedFor returns the call holding agent, "" when none.
func (r *Router) ReservedFor(ctx context.Context, agent AgentID) (call.ID, error) {
	v, err := r.rdb.Get(ctx, r.reserveKey(agent)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", r.redisErr("reserved_for", err)
	}
	return call.ID(v), nil
}

// AgentFreed records that agent's last call ended at at: longest_idle
// ranks them by it.
func (r *Router) AgentFreed(ctx context.Context, agent AgentID, at time.Time) error {
	if !validID(string(agent)) || at.IsZero() {
		return fmt.Errorf("%w: agent freed %q at %v", ErrInvalidArgument, agent, at)
	}
	return r.redisErr("agent_freed", r.rdb.ZAdd(ctx, r.idleKey(), redis.Z{Score: float64(micros(at)), Member: string(agent)}).Err())
}

// AgentBusy records that agent is in a call: longest_idle ranks them last
// until AgentFreed.
func (r *Router) AgentBusy(ctx context.Context, agent AgentID) error {
	if !validID(string(agent)) {
		return fmt.Errorf("%w: agent busy %q", ErrInvalidArgument, agent)
	}
	return r.redisErr("agent_busy", r.rdb.ZAdd(ctx, r.idleKey(), redis.Z{Score: math.Inf(1), Member: string(agent)}).Err())
}

// IdleSince returns when agent was last freed; zero when never (or not
// tracked), busy=true when in a call.
func (r *Router) IdleSince(ctx context.Context, agent AgentID) (since time.Time, busy bool, err error) {
	s, err := r.rdb.ZScore(ctx, r.idleKey(), string(agent)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, r.redisErr("idle_since", err)
	case math.IsInf(s, 1):
		return time.Time{}, true, nil
	}
	return fromMicros(int64(s)), false, nil
}
