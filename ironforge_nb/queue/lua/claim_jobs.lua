--[[ claim_jobs: hand up to N ready jobs to a worker under a lease (atomic: P0-1).

Steps: (1) promote scheduled jobs that are due (at most promote_limit per call) to the wait
ZSET, behind the jobs already queued at their priority; (2) pop the N best jobs of the wait
ZSET (highest priority, then FIFO); (3) for each: attempts + 1, status active, a fresh lease
token (from the seq counter, so unique), deadline = Redis TIME + lease, entry in the active
ZSET, a 'claimed' event; return its payload and the stable fields of its meta hash (queue,
priority, max_attempts, backoff_ms, created, run, task, user fields). Entries whose hash says anything
but 'queued' are dropped (never claimed twice).
complete_job.lua repeats steps (1)-(3) for "complete and fetch next"; keep the two in step.

KEYS[1] wait       ZSET id -> priority/FIFO score
KEYS[2] scheduled  ZSET id -> due time (ms)
KEYS[3] active     ZSET id -> lease deadline (ms)
KEYS[4] events     STREAM of the queue's transitions
KEYS[5] seq        STRING counter (FIFO order, lease tokens)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  the payload of job <id> is job_prefix .. id .. payload_suffix
ARGV[3] queue           queue name
ARGV[4] events_maxlen   approximate cap of the events stream
ARGV[5] worker          worker name, stored in the meta hash
ARGV[6] lease_ms        lease length (ms)
ARGV[7] n               how many jobs to claim at most
ARGV[8] promote_limit   how many due scheduled jobs to promote at most
Returns: {wait_ms, then per claimed job: id, token, attempt, deadline_ms, payload, stable meta
          fields as a flat field/value list}. wait_ms is, when nothing was claimed, the time
          until the earliest scheduled job is due (a worker blocks at most that long), else 0.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, psuffix, queue, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local worker, lease = ARGV[5], tonumber(ARGV[6])
local n, promote_limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local K_WAIT, K_SCHEDULED, K_ACTIVE, K_EVENTS, K_SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local out = {0}

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
return out
