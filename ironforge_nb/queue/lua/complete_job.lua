--[[ complete_job: record a job's success, then optionally claim the next jobs (one round trip).

Steps: (1) fence: the caller's token must be the job's and the job must be active (a replay of
the same completion, after a lost reply, returns {0} and changes nothing); (2) store the result
(with a TTL), status completed, progress 1, leave the active ZSET, enter the completed ZSET, a
'completed' event; (3) keep the completed ZSET at `retention` entries: the oldest are removed
with their hash, payload and result keys (at most 100 per call); (4) if fetch_n > 0, claim up to
fetch_n jobs exactly as claim_jobs.lua does (keep the two in step).
Seam for DAG runs (issue 4): after step (2), a job whose hash has a `run` field settles its run
here (decrement its children's remaining-parent counters, queue those reaching zero, update the
run hash); the run keys are then derived from a run prefix ARGV, as per-job keys are.

KEYS[1] job        HASH meta of the job
KEYS[2] result     STRING result of the job
KEYS[3] active     ZSET id -> lease deadline (ms)
KEYS[4] completed  ZSET id -> completion time (ms)
KEYS[5] events     STREAM of the queue's transitions
KEYS[6] wait       ZSET id -> priority/FIFO score
KEYS[7] scheduled  ZSET id -> due time (ms)
KEYS[8] seq        STRING counter (FIFO order, lease tokens)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] result_suffix   result key = job_prefix .. id .. result_suffix
ARGV[4] queue           queue name
ARGV[5] events_maxlen   approximate cap of the events stream
ARGV[6] job_id          id of the job
ARGV[7] token           the caller's lease token
ARGV[8] has_result      '1' to store ARGV[9] as the result
ARGV[9] result          result bytes
ARGV[10] result_ttl_ms  how long the result is kept (ms)
ARGV[11] retention      completed jobs kept in the queue
ARGV[12] worker         worker name (for the next claims)
ARGV[13] lease_ms       lease of the next claims (ms)
ARGV[14] fetch_n        how many next jobs to claim (0 = none)
ARGV[15] promote_limit  how many due scheduled jobs to promote at most
Returns: the claim_jobs.lua reply ({0} when fetch_n is 0), or {code, detail} on error:
  -1 JOB_NOT_FOUND (no hash), -2 LEASE_LOST (token differs; detail = status),
  -3 BAD_STATE (not active, e.g. cancelled; detail = status).
]]
local st = redis.call('HMGET', KEYS[1], 'status', 'token', 'attempts', 'worker')
if not st[1] then return {-1, ''} end
if st[2] ~= ARGV[7] then return {-2, st[1]} end
if st[1] == 'completed' then return {0} end
if st[1] ~= 'active' then return {-3, st[1]} end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, psuffix, rsuffix = ARGV[1], ARGV[2], ARGV[3]
local queue, maxlen, id = ARGV[4], ARGV[5], ARGV[6]

if ARGV[8] == '1' then redis.call('SET', KEYS[2], ARGV[9], 'PX', ARGV[10]) end
redis.call('HSET', KEYS[1], 'status', 'completed', 'finished', now, 'progress', 1)
redis.call('ZREM', KEYS[3], id)
redis.call('ZADD', KEYS[4], now, id)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*', 'type', 'completed', 'ts', now,
           'job', id, 'queue', queue, 'status', 'completed', 'attempt', st[3],
           'worker', st[4] or '')

local excess = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[11])
if excess > 0 then
  local old = redis.call('ZPOPMIN', KEYS[4], math.min(excess, 100))
  for p = 1, #old, 2 do
    local ok = prefix .. old[p]
    redis.call('DEL', ok, ok .. psuffix, ok .. rsuffix)
  end
end

local out = {0}
local n = tonumber(ARGV[14])
if n < 1 then return out end
local worker, lease, promote_limit = ARGV[12], tonumber(ARGV[13]), tonumber(ARGV[15])
local K_WAIT, K_SCHEDULED, K_ACTIVE, K_EVENTS, K_SEQ = KEYS[6], KEYS[7], KEYS[3], KEYS[5], KEYS[8]

-- >>> claim block: identical in claim_jobs.lua and complete_job.lua (a test checks it)
-- uses: now, prefix, psuffix, queue, maxlen, worker, lease, n, promote_limit, out and
-- K_WAIT, K_SCHEDULED, K_ACTIVE, K_EVENTS, K_SEQ
local due = redis.call('ZRANGEBYSCORE', K_SCHEDULED, '-inf', now, 'LIMIT', 0, promote_limit)
for _, id in ipairs(due) do
  local jk = prefix .. id
  local prio = tonumber(redis.call('HGET', jk, 'priority') or '0')
  local seq = redis.call('INCR', K_SEQ)
  redis.call('ZADD', K_WAIT, -prio * 1099511627776 + seq, id)
  redis.call('HSET', jk, 'status', 'queued', 'enqueued', now)
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', maxlen, '*', 'type', 'enqueued', 'ts', now,
             'job', id, 'queue', queue, 'status', 'queued')
end
if #due > 0 then redis.call('ZREM', K_SCHEDULED, unpack(due)) end

-- fields that change with each attempt stay out of the lease's meta
local volatile = {status = 1, token = 1, worker = 1, started = 1, lease_ms = 1, attempts = 1,
                  progress = 1, message = 1, error = 1, failures = 1, enqueued = 1,
                  finished = 1}
local popped = redis.call('ZPOPMIN', K_WAIT, n)
local token = nil
for p = 1, #popped, 2 do
  local id = popped[p]
  local jk = prefix .. id
  local h = redis.call('HGETALL', jk)
  local status, attempts, meta = nil, 0, {}
  for f = 1, #h, 2 do
    local name = h[f]
    if name == 'status' then status = h[f + 1]
    elseif name == 'attempts' then attempts = tonumber(h[f + 1])
    elseif not volatile[name] and string.sub(name, 1, 6) ~= 'error.' then
      meta[#meta + 1] = name; meta[#meta + 1] = h[f + 1]
    end
  end
  if status == 'queued' then  -- anything else is a stale entry: dropped, never claimed twice
    if not token then token = redis.call('INCRBY', K_SEQ, #popped) - #popped end
    token = token + 1
    local tok, attempt, deadline = string.format('%d', token), attempts + 1, now + lease
    redis.call('HSET', jk, 'status', 'active', 'token', tok, 'worker', worker, 'started', now,
               'lease_ms', lease, 'attempts', attempt)
    redis.call('ZADD', K_ACTIVE, deadline, id)
    redis.call('XADD', K_EVENTS, 'MAXLEN', '~', maxlen, '*', 'type', 'claimed', 'ts', now,
               'job', id, 'queue', queue, 'status', 'active', 'attempt', attempt,
               'worker', worker)
    local o = #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = id, tok, attempt, deadline
    out[o + 5] = redis.call('GET', jk .. psuffix) or ''
    out[o + 6] = meta
  end
end
if #out == 1 then
  local first = redis.call('ZRANGE', K_SCHEDULED, 0, 0, 'WITHSCORES')
  if #first > 0 then out[1] = math.max(1, tonumber(first[2]) - now) end
end
-- <<< claim block
return out
