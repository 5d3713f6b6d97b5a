--[[ complete_job: record the success of one or more jobs, then optionally claim the next jobs.

For each completed job: (1) fence: the caller's token must be the job's and the job must be
active (a replay of the same completion, after a lost reply, reports 0 and changes nothing);
(2) store its result (with a TTL), status completed, progress 1, leave the active ZSET, enter
the completed ZSET, a 'completed' event. Then (3) keep the completed ZSET at `retention`
entries: the oldest are removed with their hash, payload and result keys (at most 100 per call),
except jobs of DAG runs, which only leave the ZSET: their keys live as long as their run
(run_helpers.lua `trim_ended`; runs are deleted whole by delete_runs.lua);
(4) if fetch_n > 0 and no completion was refused, claim up to fetch_n jobs exactly as
claim_jobs.lua does (the claim block below is a copy; a test keeps them identical). Steady-state
workers thus make one call per job, or one per batch of jobs.
DAG runs: after step (2) of a job whose hash has a `run` field, run_on_complete (from
run_helpers.lua, prepended at load time) counts it in its run, decrements its children's
remaining-parent counters, queues those reaching zero in their own queues, and settles the run;
run and queue keys are derived from the two prefixes passed last in ARGV.

KEYS[1] active     ZSET id -> lease deadline (ms)
KEYS[2] completed  ZSET id -> completion time (ms)
KEYS[3] events     STREAM of the queue's transitions
KEYS[4] wait       ZSET id -> priority/FIFO score
KEYS[5] scheduled  ZSET id -> due time (ms)
KEYS[6] seq        STRING counter (FIFO order, lease tokens)
KEYS[5+2i], KEYS[6+2i]  job i's meta HASH and result STRING (i = 1..m)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] result_suffix   result key = job_prefix .. id .. result_suffix
ARGV[4] queue           queue name
ARGV[5] events_maxlen   approximate cap of the events stream
ARGV[6] result_ttl_ms   how long results are kept (ms)
ARGV[7] retention       completed jobs kept in the queue
ARGV[8] worker          worker name (for the next claims)
ARGV[9] lease_ms        lease of the next claims (ms)
ARGV[10] fetch_n        how many next jobs to claim (0 = none)
ARGV[11] promote_limit  how many due scheduled jobs to promote at most
ARGV[8+4i..11+4i]       job i: id, token, has_result ('1' = store the result), result bytes
ARGV[#ARGV-1] run_prefix    run keys = run_prefix .. run id .. ':' .. suffix (last but one)
ARGV[#ARGV] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix (last)
Returns: {claim reply, outcomes}: the claim reply as claim_jobs.lua returns it ({0} when nothing
  was claimed), and one outcome per job: 1 completed, 0 replay of a completion, or an error
  {code, detail}: -1 JOB_NOT_FOUND (no hash), -2 LEASE_LOST (token differs; detail = status),
  -3 BAD_STATE (not active, e.g. cancelled; detail = status).
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, psuffix, rsuffix = ARGV[1], ARGV[2], ARGV[3]
local queue, maxlen = ARGV[4], ARGV[5]
local rctx = run_ctx(prefix, ARGV[#ARGV - 1], ARGV[#ARGV], maxlen)
local outcomes, refused, done = {}, false, {}
for i = 1, (#KEYS - 6) / 2 do
  local jk, rk, a = KEYS[5 + 2 * i], KEYS[6 + 2 * i], 8 + 4 * i
  local id = ARGV[a]
  local st = redis.call('HMGET', jk, 'status', 'token', 'attempts', 'worker')
  if not st[1] then outcomes[i] = {-1, ''}
  elseif st[2] ~= ARGV[a + 1] then outcomes[i] = {-2, st[1]}
  elseif st[1] == 'completed' then outcomes[i] = 0
  elseif st[1] ~= 'active' then outcomes[i] = {-3, st[1]}
  else
    if ARGV[a + 2] == '1' then redis.call('SET', rk, ARGV[a + 3], 'PX', ARGV[6]) end
    redis.call('HSET', jk, 'status', 'completed', 'finished', now, 'progress', 1)
    done[#done + 1] = id
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'type', 'completed', 'ts', now,
               'job', id, 'queue', queue, 'status', 'completed', 'attempt', st[3],
               'worker', st[4] or '')
    outcomes[i] = 1
    run_on_complete(rctx, jk, id, now)
  end
  if type(outcomes[i]) == 'table' then refused = true end
end
-- one ZREM and one ZADD per 1000 completed jobs (Lua's unpack has limits)
for from = 1, #done, 1000 do
  local ids, ranked = {}, {}
  for j = from, math.min(from + 999, #done) do
    ids[#ids + 1] = done[j]
    ranked[#ranked + 1] = now
    ranked[#ranked + 1] = done[j]
  end
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('ZADD', KEYS[2], unpack(ranked))
end

trim_ended(KEYS[2], ARGV[7], prefix, psuffix, rsuffix)

local out = {0}
local n = tonumber(ARGV[10])
if n < 1 or refused then return {out, outcomes} end
local worker, lease, promote_limit = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[11])
local K_WAIT, K_SCHEDULED, K_ACTIVE, K_EVENTS, K_SEQ = KEYS[4], KEYS[5], KEYS[1], KEYS[3], KEYS[6]

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
local token, leased = nil, {}
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
    leased[#leased + 1] = deadline
    leased[#leased + 1] = id
    if #leased >= 2000 then  -- one ZADD per 1000 claims (Lua's unpack has limits)
      redis.call('ZADD', K_ACTIVE, unpack(leased))
      leased = {}
    end
    redis.call('XADD', K_EVENTS, 'MAXLEN', '~', maxlen, '*', 'type', 'claimed', 'ts', now,
               'job', id, 'queue', queue, 'status', 'active', 'attempt', attempt,
               'worker', worker)
    local o = #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = id, tok, attempt, deadline
    out[o + 5] = redis.call('GET', jk .. psuffix) or ''
    out[o + 6] = meta
  end
end
if #leased > 0 then redis.call('ZADD', K_ACTIVE, unpack(leased)) end
if #out == 1 then
  local first = redis.call('ZRANGE', K_SCHEDULED, 0, 0, 'WITHSCORES')
  if #first > 0 then out[1] = math.max(1, tonumber(first[2]) - now) end
end
-- <<< claim block
return {out, outcomes}
