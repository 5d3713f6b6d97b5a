--[[ reap_expired: turn expired leases into failed attempts (retry later or dead letter).

A worker that died (or stalled past its lease) leaves its job in the active ZSET with a deadline
in the past. Each such job (at most `limit` per call, oldest deadline first) loses its token (so
the late worker's heartbeat/progress/complete/fail are refused as LEASE_LOST), gets the error
"lease expired" in its history, and is then retried with backoff like fail_job.lua does, or moved
to the dead-letter queue when its attempts are used up. Every worker may run this at any time:
the script is atomic and bounded, and a job is reaped once because it leaves the active ZSET.
DAG runs (run_helpers.lua, prepended at load time): the dead-letter branch settles the job's
run as fail_job.lua does; the retry branch appends a 'lease_expired' event to the run's stream.

KEYS[1] active     ZSET id -> lease deadline (ms)
KEYS[2] scheduled  ZSET id -> due time (ms)
KEYS[3] dead       ZSET id -> time it failed for good (ms)
KEYS[4] events     STREAM of the queue's transitions
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] queue           queue name
ARGV[3] events_maxlen   approximate cap of the events stream
ARGV[4] limit           how many expired leases to reap at most
ARGV[5] jitter          random number in [0, 1) drawn by the caller
ARGV[6] max_backoff_ms  cap of one retry delay (ms)
ARGV[7] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix
ARGV[8] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
Returns: the number of jobs reaped.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, queue, maxlen = ARGV[1], ARGV[2], ARGV[3]
local rctx = run_ctx(prefix, ARGV[7], ARGV[8], maxlen)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0,
                           tonumber(ARGV[4]))
for k, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local jk = prefix .. id
  local st = redis.call('HMGET', jk, 'status', 'attempts', 'max_attempts', 'backoff_ms', 'worker')
  if st[1] == 'active' then
    local attempt, worker = tonumber(st[2]), st[5] or ''
    local err = 'lease expired (worker ' .. worker .. ')'
    local n = redis.call('HINCRBY', jk, 'failures', 1)
    redis.call('HDEL', jk, 'token')
    redis.call('HSET', jk, 'error', err, 'error.' .. n, string.format('%d|%d|', attempt, now) .. err)
    local status = 'failed'
    if attempt < tonumber(st[3]) then
      -- a different jitter per job, from the caller's one random number (golden ratio steps)
      local jitter = (tonumber(ARGV[5]) + k * 0.6180339887) % 1
      local delay = tonumber(st[4]) * 2 ^ (attempt - 1) * (1 + 0.25 * jitter)
      status = 'scheduled'
      redis.call('HSET', jk, 'status', status)
      redis.call('ZADD', KEYS[2], now + math.floor(math.min(delay, tonumber(ARGV[6]))), id)
    else
      redis.call('HSET', jk, 'status', status, 'finished', now)
      redis.call('ZADD', KEYS[3], now, id)
    end
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'type', 'lease_expired', 'ts', now,
               'job', id, 'queue', queue, 'status', status, 'attempt', attempt,
               'error', err, 'worker', worker)
    if status == 'failed' then
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'type', 'failed', 'ts', now,
                 'job', id, 'queue', queue, 'status', status, 'attempt', attempt,
                 'error', err, 'worker', worker)
      run_on_failed(rctx, jk, id, now, err)
    else
      run_on_retry(rctx, jk, id, now, 'lease_expired', err)
    end
  end
end
return #expired
