package permissions

import "github.com/redis/go-redis/v9"

// decideLua is the one script behind every decision. It runs atomically, in
// one round trip, over the four keys of one pair (all in one hash slot):
//
//	KEYS[1] <prefix>{<business>:<user>}:st  hash: st (0 none, 1 temporary, 2 permanent),
//	        exp (ms), rv (1 = last change was a revocation), src, reset (ms of the last
//	        connected call: requests at or before it do not count), streak, rlim, clim (ms)
//	KEYS[2] ...:rq  zset request id -> ms sent
//	KEYS[3] ...:cc  zset connected business-initiated call id -> ms connected
//	KEYS[4] ...:ev  zset processed event id -> ms (idempotency of calls, grants, revokes)
//
//	ARGV: op, now, day, week, call window, max/24h, max/7d, max calls, reminder,
//	      revoke, retention (all ms or counts), id, a1, a2, a3
//
// Time comes only from ARGV (the Go Clock). Numbers stay below 2^53 and are
// formatted by Lua as integers, which Redis' Lua 5.1 and miniredis'
// gopher-lua both do; the script uses no library beyond math.max.
//
// It returns {status, exp, c24, c7, nextReq, cc, nextCall, streak,
// callReason, reqReason, result, granted, revoked}, the view after the op.
const decideLua = `
local op = ARGV[1]
local now = tonumber(ARGV[2])
local day = tonumber(ARGV[3])
local week = tonumber(ARGV[4])
local cwin = tonumber(ARGV[5])
local m24 = tonumber(ARGV[6])
local m7 = tonumber(ARGV[7])
local mc = tonumber(ARGV[8])
local revokeAt = tonumber(ARGV[10])
local keep = tonumber(ARGV[11])
local id = ARGV[12]
local a1, a2, a3 = ARGV[13], ARGV[14], ARGV[15]

local function num(v)
  if v then return tonumber(v) or 0 end
  return 0
end

local function grantState()
  local h = redis.call('HMGET', KEYS[1], 'st', 'exp')
  local st, exp = num(h[1]), num(h[2])
  return st, exp, (st == 2 or (st == 1 and exp > now))
end

local function oldest(key, lo, offset, width)
  local r = redis.call('ZRANGEBYSCORE', key, '(' .. lo, '+inf', 'WITHSCORES', 'LIMIT', offset, 1)
  if r[2] then return tonumber(r[2]) + width end
  return 0
end

local function view()
  local h = redis.call('HMGET', KEYS[1], 'st', 'exp', 'rv', 'reset', 'streak', 'rlim', 'clim')
  local st, exp, rv, reset = num(h[1]), num(h[2]), num(h[3]), num(h[4])
  local streak, rlim, clim = num(h[5]), num(h[6]), num(h[7])
  local valid = st == 2 or (st == 1 and exp > now)
  local lo24 = math.max(now - day, reset)
  local lo7 = math.max(now - week, reset)
  local c24 = redis.call('ZCOUNT', KEYS[2], '(' .. lo24, '+inf')
  local c7 = redis.call('ZCOUNT', KEYS[2], '(' .. lo7, '+inf')
  local nextReq = 0
  if c24 >= m24 then nextReq = math.max(nextReq, oldest(KEYS[2], lo24, c24 - m24, day)) end
  if c7 >= m7 then nextReq = math.max(nextReq, oldest(KEYS[2], lo7, c7 - m7, week)) end
  if rlim > now then nextReq = math.max(nextReq, rlim) end
  local reqReason = ''
  if st == 2 then reqReason = 'permanent_exists'; nextReq = 0
  elseif rlim > now then reqReason = 'request_limit_meta'
  elseif c24 >= m24 then reqReason = 'request_limit_24h'
  elseif c7 >= m7 then reqReason = 'request_limit_7d' end
  local lo = now - cwin
  local cc = redis.call('ZCOUNT', KEYS[3], '(' .. lo, '+inf')
  local nextCall = 0
  if cc >= mc then nextCall = oldest(KEYS[3], lo, cc - mc, cwin) end
  if clim > now then nextCall = math.max(nextCall, clim) end
  local callReason = ''
  if not valid then
    if st == 1 then callReason = 'expired'
    elseif rv == 1 then callReason = 'revoked'
    else callReason = 'no_permission' end
  elseif nextCall > 0 then callReason = 'connected_call_limit' end
  local status = st
  if not valid then status = 0 end
  if st ~= 1 then exp = 0 end
  return {status, exp, c24, c7, nextReq, cc, nextCall, streak, callReason, reqReason}
end

local function seen(member)
  if id == '' then return false end
  if redis.call('ZSCORE', KEYS[4], member) then return true end
  redis.call('ZADD', KEYS[4], ARGV[2], member)
  return false
end

local granted, revoked = 0, 0

local function doRevoke(src, mark)
  local st, exp, valid = grantState()
  if valid then revoked = 1 end
  redis.call('HSET', KEYS[1], 'st', '0', 'exp', '0', 'rv', mark, 'src', src)
end

local function doGrant(perm, exp, src)
  local st, cur, valid = grantState()
  if perm then
    redis.call('HSET', KEYS[1], 'st', '2', 'exp', '0', 'rv', '0', 'streak', '0', 'src', src)
    if st ~= 2 then granted = 1 end
    return
  end
  if st == 2 then return end
  if st == 1 and cur >= exp then return end
  redis.call('HSET', KEYS[1], 'st', '1', 'exp', exp, 'rv', '0', 'streak', '0', 'src', src)
  granted = 1
end

local function connected()
  redis.call('HSET', KEYS[1], 'reset', ARGV[2], 'streak', '0')
  redis.call('HDEL', KEYS[1], 'rlim')
end

local function touch()
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - week)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - cwin)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - keep)
  redis.call('PEXPIRE', KEYS[2], keep)
  redis.call('PEXPIRE', KEYS[3], keep)
  redis.call('PEXPIRE', KEYS[4], keep)
  local st, exp = grantState()
  if st == 2 then
    redis.call('PERSIST', KEYS[1])
  else
    local ttl = keep
    if st == 1 and exp - now + day > ttl then ttl = exp - now + day end
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end

local result = 'applied'
if op == 'view' then
  result = 'view'
elseif op == 'req' then
  if redis.call('ZSCORE', KEYS[2], id) then
    result = 'duplicate'
  else
    local v = view()
    if v[10] ~= '' then
      result = v[10]
    else
      redis.call('ZADD', KEYS[2], ARGV[2], id)
      result = 'allowed'
    end
  end
  touch()
elseif op == 'undo' then
  if redis.call('ZREM', KEYS[2], id) == 0 then result = 'duplicate' end
  touch()
elseif op == 'call' then
  if seen('c:' .. id) then
    result = 'duplicate'
  elseif a1 == 'connected' then
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    connected()
  elseif a1 == 'unanswered' or a1 == 'declined' then
    -- the reference counts declines: "unanswered or rejected"
    local s = redis.call('HINCRBY', KEYS[1], 'streak', 1)
    local st, exp, valid = grantState()
    if s >= revokeAt and valid then doRevoke('unanswered_calls', '1') end
  end
  touch()
elseif op == 'in' then
  local other = 'i1:'
  if a1 == '1' then other = 'i0:' end
  local firstOfCall = id == '' or not redis.call('ZSCORE', KEYS[4], other .. id)
  if seen('i' .. a1 .. ':' .. id) then
    result = 'duplicate'
  else
    if a2 == '1' and firstOfCall then doGrant(false, tonumber(a3), 'callback') end
    if a1 == '1' then connected() end
  end
  touch()
elseif op == 'grant' then
  if seen('g:' .. id) then
    result = 'duplicate'
  else
    doGrant(a1 == '1', tonumber(a2), a3)
  end
  touch()
elseif op == 'revoke' then
  if seen('r:' .. id) then
    result = 'duplicate'
  else
    doRevoke(a3, '1')
  end
  touch()
elseif op == 'refused' then
  local untilMs = tonumber(a2)
  if a1 == '138006' then
    doRevoke('meta', '0')
  elseif a1 == '138009' then
    local h = redis.call('HGET', KEYS[1], 'rlim')
    if num(h) < untilMs then redis.call('HSET', KEYS[1], 'rlim', a2) end
  elseif a1 == '138012' then
    local h = redis.call('HGET', KEYS[1], 'clim')
    if num(h) < untilMs then redis.call('HSET', KEYS[1], 'clim', a2) end
  elseif a1 == '138017' then
    doGrant(true, 0, 'meta')
  else
    return redis.error_reply('unknown code ' .. a1)
  end
  touch()
else
  return redis.error_reply('unknown op ' .. op)
end

local v = view()
v[11] = result
v[12] = granted
v[13] = revoked
return v
`

// newDecideScript returns the script; go-redis runs it with EVALSHA and falls
// back to EVAL when the server does not have it cached (a restart, a new
// cluster node).
func newDecideScript() *redis.Script { return redis.NewScript(decideLua) }
