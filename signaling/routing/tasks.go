package routing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
)

// TaskState is where a callback task is.
type TaskState uint8

const (
	TaskUnknown TaskState = iota
	TaskOpen              // waiting for an agent
	TaskClaimed           // an agent took it
	TaskClosed            // the user was reached, or an agent closed it
)

var taskStateNames = [...]string{"unknown", "open", "claimed", "closed"}

func (s TaskState) String() string {
	if int(s) < len(taskStateNames) {
		return taskStateNames[s]
	}
	return "unknown"
}

func parseTaskState(s string) TaskState {
	for i, n := range taskStateNames {
		if n == s {
			return TaskState(i)
		}
	}
	return TaskUnknown
}

// Task is a callback owed to a user whose call was missed.
type Task struct {
	ID        string // the id of the first missed call, "cb-" prefixed
	Team      TeamID
	User      phone.User // phone and/or BSUID (either may be empty, not both)
	Missed    int        // missed calls folded into the task
	FirstCall call.ID
	LastCall  call.ID
	Created   time.Time // first missed call
	Updated   time.Time // last missed call or state change
	State     TaskState
	Agent     AgentID   // claimer (claimed, or closed after a claim)
	ClosedBy  string    // call id that reached the user, or "agent:<id>"
	ClosedAt  time.Time // zero unless closed
}

// A task is a hash in its team's slot; the team keeps one sorted set per
// state (score: created µs) and user index keys (taskuser:p:<digits>,
// taskuser:b:<bsuid>) → the id of the user's open or claimed task.
//
// createScript: KEYS[1] open set, KEYS[2] phone index, KEYS[3] bsuid index
// (either may be a dummy when the id is unknown; ARGV says which).
// ARGV: 1 key prefix of task hashes, 2 new id, 3 call id, 4 at µs,
// 5 phone E164, 6 bsuid, 7 team, 8 has phone (1/0), 9 has bsuid, 10 ttl s.
var createScript = redis.NewScript(`
local id = false
if ARGV[8] == '1' then id = redis.call('GET', KEYS[2]) end
if (not id) and ARGV[9] == '1' then id = redis.call('GET', KEYS[3]) end
if id then
  local tk = ARGV[1] .. id
  local st = redis.call('HGET', tk, 'state')
  if st == 'open' or st == 'claimed' then
    if redis.call('HGET', tk, 'last_call') ~= ARGV[3] then
      redis.call('HINCRBY', tk, 'missed', 1)
      redis.call('HSET', tk, 'last_call', ARGV[3], 'updated', ARGV[4])
    end
    if ARGV[8] == '1' and redis.call('HGET', tk, 'phone') == '' then redis.call('HSET', tk, 'phone', ARGV[5]) end
    if ARGV[9] == '1' and redis.call('HGET', tk, 'bsuid') == '' then redis.call('HSET', tk, 'bsuid', ARGV[6]) end
    if ARGV[8] == '1' then redis.call('SET', KEYS[2], id, 'EX', ARGV[10]) end
    if ARGV[9] == '1' then redis.call('SET', KEYS[3], id, 'EX', ARGV[10]) end
    redis.call('EXPIRE', tk, ARGV[10])
    return {id, 0}
  end
end
id = ARGV[2]
local tk = ARGV[1] .. id
if redis.call('EXISTS', tk) == 1 then return {id, 2} end
redis.call('HSET', tk, 'id', id, 'team', ARGV[7], 'phone', ARGV[5], 'bsuid', ARGV[6], 'missed', 1,
  'first_call', ARGV[3], 'last_call', ARGV[3], 'created', ARGV[4], 'updated', ARGV[4], 'state', 'open',
  'agent', '', 'closed_by', '', 'closed_at', '')
redis.call('EXPIRE', tk, ARGV[10])
redis.call('ZADD', KEYS[1], ARGV[4], id)
if ARGV[8] == '1' then redis.call('SET', KEYS[2], id, 'EX', ARGV[10]) end
if ARGV[9] == '1' then redis.call('SET', KEYS[3], id, 'EX', ARGV[10]) end
return {id, 1}
`)

func (r *Router) userKeys(team TeamID, u phone.User) (pk, bk string, hasP, hasB bool) {
	pk, bk = r.userIndexKey(team, "p", "-"), r.userIndexKey(team, "b", "-")
	if u.Phone.Digits != "" {
		pk, hasP = r.userIndexKey(team, "p", u.Phone.Digits), true
	}
	if u.BSUID != "" {
		bk, hasB = r.userIndexKey(team, "b", u.BSUID), true
	}
	return pk, bk, hasP, hasB
}

func validUser(u phone.User) bool {
	if !u.Known() {
		return false
	}
	if u.BSUID != "" && !phone.IsBSUID(u.BSUID) {
		return false
	}
	if u.Phone.E164 != "" && u.Phone.Digits == "" {
		return false
	}
	return true
}

// CreateTask records that callID from user, meant for team, was missed at
// at. The user's open or claimed task in the team, found by phone or by
// BSUID, is updated (one more missed call, ids completed) rather than
// duplicated; otherwise a new open task is made. created says which.
// Repeating the same call id changes nothing.
func (r *Router) CreateTask(ctx context.Context, team TeamID, user phone.User, callID call.ID, at time.Time) (t Task, created bool, err error) {
	if _, err := r.team(team); err != nil {
		return Task{}, false, err
	}
	if !validUser(user) || !validID(string(callID)) || at.IsZero() {
		return Task{}, false, fmt.Errorf("%w: task for %s, call %q at %v", ErrInvalidArgument, user.Masked(), callID, at)
	}
	pk, bk, hasP, hasB := r.userKeys(team, user)
	v, err := createScript.Run(ctx, r.rdb, []string{r.taskSetKey(team, TaskOpen), pk, bk},
		r.taskKeyPrefix(team), "cb-"+string(callID), string(callID), micros(at), user.Phone.E164, user.BSUID, string(team),
		b01(hasP), b01(hasB), int64(r.ttl/time.Second)).Slice()
	if err != nil {
		return Task{}, false, r.redisErr("create_task", err)
	}
	id, _ := v[0].(string)
	code, _ := v[1].(int64)
	if code == 2 {
		// The call's own task exists but is closed: the same missed call
		// reported again after the user was reached. Nothing to do.
		t, err := r.Task(ctx, team, id)
		return t, false, err
	}
	t, err = r.Task(ctx, team, id)
	if err != nil {
		return Task{}, false, err
	}
	if code == 1 {
		r.m.tasks.WithLabelValues(string(team), "created").Inc()
		r.log.Info("callback task created", "team", team, "task", id, "user", user.Masked())
	} else {
		r.m.tasks.WithLabelValues(string(team), "updated").Inc()
	}
	return t, code == 1, nil
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Task reads one task; ErrNoTask when it does not exist (or has expired).
func (r *Router) Task(ctx context.Context, team TeamID, id string) (Task, error) {
	if _, err := r.team(team); err != nil {
		return Task{}, err
	}
	m, err := r.rdb.HGetAll(ctx, r.taskKeyPrefix(team)+id).Result()
	if err != nil {
		return Task{}, r.redisErr("task", err)
	}
	if len(m) == 0 {
		return Task{}, fmt.Errorf("%w: %s in %s", ErrNoTask, id, team)
	}
	return taskOf(team, m), nil
}

func taskOf(team TeamID, m map[string]string) Task {
	us := func(k string) time.Time {
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil || n == 0 {
			return time.Time{}
		}
		return fromMicros(n)
	}
	missed, _ := strconv.Atoi(m["missed"])
	t := Task{ID: m["id"], Team: team, Missed: missed, FirstCall: call.ID(m["first_call"]), LastCall: call.ID(m["last_call"]),
		Created: us("created"), Updated: us("updated"), State: parseTaskState(m["state"]), Agent: AgentID(m["agent"]),
		ClosedBy: m["closed_by"], ClosedAt: us("closed_at")}
	t.User.BSUID = m["bsuid"]
	if m["phone"] != "" {
		if n, err := phone.Parse(m["phone"]); err == nil {
			t.User.Phone = n
		}
	}
	return t
}

// Tasks lists team's tasks in state, oldest first, at most limit (0 = all
// open/claimed; closed are bounded by ClosedKept).
func (r *Router) Tasks(ctx context.Context, team TeamID, state TaskState, limit int) ([]Task, error) {
	if _, err := r.team(team); err != nil {
		return nil, err
	}
	if state == TaskUnknown || state > TaskClosed || limit < 0 {
		return nil, fmt.Errorf("%w: list %v tasks (limit %d)", ErrInvalidArgument, state, limit)
	}
	set := r.taskSetKey(team, state)
	ids, err := r.rdb.ZRange(ctx, set, 0, int64(limit)-1).Result()
	if err != nil {
		return nil, r.redisErr("tasks", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, r.taskKeyPrefix(team)+id)
		}
		return nil
	})
	if err != nil {
		return nil, r.redisErr("tasks", err)
	}
	out := make([]Task, 0, len(ids))
	var gone []any
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			gone = append(gone, ids[i]) // expired hash: drop from the list
			continue
		}
		out = append(out, taskOf(team, m))
	}
	if len(gone) > 0 {
		_ = r.rdb.ZRem(ctx, set, gone...).Err()
	}
	return out, nil
}

// stateScript moves a task between states. KEYS[1] task hash, KEYS[2..4]
// open, claimed, closed sets, KEYS[5] phone index, KEYS[6] bsuid index
// (computed from the task in Go beforehand is racy, so passed as prefixes
// in ARGV and built here — same slot). ARGV: 1 op (claim|unclaim|close),
// 2 agent or closer, 3 now µs, 4 id, 5 index prefix, 6 closed kept,
// 7 ttl s. Returns {code, agent}: 0 ok, 1 no task, 2 claimed by other,
// 3 closed, 4 not claimed by this agent.
var stateScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {1, ''} end
local agent = redis.call('HGET', KEYS[1], 'agent')
local op, who, now, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if st == 'closed' then return {3, agent} end
if op == 'claim' then
  if st == 'claimed' then
    if agent == who then return {0, agent} end
    return {2, agent}
  end
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'agent', who, 'updated', now)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[1], 'created'), id)
  return {0, who}
elseif op == 'unclaim' then
  if st ~= 'claimed' or agent ~= who then return {4, agent} end
  redis.call('HSET', KEYS[1], 'state', 'open', 'agent', '', 'updated', now)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'created'), id)
  return {0, ''}
else
  redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_by', who, 'closed_at', now, 'updated', now)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[4], now, id)
  local n = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(n + 1))
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  local p = redis.call('HGET', KEYS[1], 'phone')
  local b = redis.call('HGET', KEYS[1], 'bsuid')
  if p ~= '' then
    local k = ARGV[5] .. 'p:' .. string.sub(p, 2)
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
  if b ~= '' then
    local k = ARGV[5] .. 'b:' .. b
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
  return {0, agent}
end
`)

func (r *Router) moveTask(ctx context.Context, team TeamID, id, op, who string) (int64, error) {
	if _, err := r.team(team); err != nil {
		return 0, err
	}
	if !validID(id) || !validID(who) {
		return 0, fmt.Errorf("%w: %s task %q by %q", ErrInvalidArgument, op, id, who)
	}
	keys := []string{r.taskKeyPrefix(team) + id, r.taskSetKey(team, TaskOpen), r.taskSetKey(team, TaskClaimed), r.taskSetKey(team, TaskClosed)}
	v, err := stateScript.Run(ctx, r.rdb, keys, op, who, micros(r.clk.Now()), id, r.teamTag(team)+"taskuser:", r.kept, int64(r.ttl/time.Second)).Slice()
	if err != nil {
		return 0, r.redisErr(op+"_task", err)
	}
	code, _ := v[0].(int64)
	holder, _ := v[1].(string)
	switch code {
	case 1:
		return code, fmt.Errorf("%w: %s in %s", ErrNoTask, id, team)
	case 2:
		return code, fmt.Errorf("%w: %s has %s", ErrTaskClaimed, id, holder)
	case 3:
		return code, fmt.Errorf("%w: %s", ErrTaskClosed, id)
	case 4:
		return code, fmt.Errorf("%w: %s is not claimed by %s", ErrTaskClaimed, id, who)
	}
	return 0, nil
}

// Claim gives the task to agent: exactly one agent wins (ErrTaskClaimed
// for the others); claiming again by the winner is a no-op. ErrTaskClosed
// when the user was reached meanwhile.
func (r *Router) Claim(ctx context.Context, team TeamID, taskID string, agent AgentID) (Task, error) {
	if _, err := r.moveTask(ctx, team, taskID, "claim", string(agent)); err != nil {
		return Task{}, err
	}
	r.m.tasks.WithLabelValues(string(team), "claimed").Inc()
	return r.Task(ctx, team, taskID)
}

// Unclaim gives a task claimed by agent back to the open list.
func (r *Router) Unclaim(ctx context.Context, team TeamID, taskID string, agent AgentID) error {
	if _, err := r.moveTask(ctx, team, taskID, "unclaim", string(agent)); err != nil {
		return err
	}
	r.m.tasks.WithLabelValues(string(team), "unclaimed").Inc()
	return nil
}

// Close closes one task by hand (an agent or supervisor: by is recorded,
// e.g. "agent:ana").
func (r *Router) Close(ctx context.Context, team TeamID, taskID string, by string) error {
	if _, err := r.moveTask(ctx, team, taskID, "close", by); err != nil {
		return err
	}
	r.m.tasks.WithLabelValues(string(team), "closed").Inc()
	return nil
}

// CloseForUser closes the user's open or claimed task in every team (the
// user was reached by callID, a call in either direction answered by
// anyone) and returns the tasks it closed.
func (r *Router) CloseForUser(ctx context.Context, user phone.User, callID call.ID) ([]Task, error) {
	if !validUser(user) || !validID(string(callID)) {
		return nil, fmt.Errorf("%w: close tasks of %s by %q", ErrInvalidArgument, user.Masked(), callID)
	}
	var out []Task
	for _, team := range r.cfg.Load().TeamIDs() {
		pk, bk, hasP, hasB := r.userKeys(team, user)
		var ids []string
		for _, k := range []struct {
			key string
			has bool
		}{{pk, hasP}, {bk, hasB}} {
			if !k.has {
				continue
			}
			id, err := r.rdb.Get(ctx, k.key).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return out, r.redisErr("close_for_user", err)
			}
			if len(ids) == 0 || ids[0] != id {
				ids = append(ids, id)
			}
		}
		for _, id := range ids {
			_, err := r.moveTask(ctx, team, id, "close", string(callID))
			if errors.Is(err, ErrTaskClosed) || errors.Is(err, ErrNoTask) {
				continue // closed meanwhile by another instance
			}
			if err != nil {
				return out, err
			}
			r.m.tasks.WithLabelValues(string(team), "closed").Inc()
			t, err := r.Task(ctx, team, id)
			if err != nil {
				return out, err
			}
			out = append(out, t)
		}
	}
	return out, nil
}
