--[[ claim_jobs: hand up to N ready jobs to a worker under a lease (atomic: P0-1).

Steps: (1) promote scheduled jobs that are due (at most promote_limit per call) to the wait
ZSET, behind the jobs already queued at their priority; (2) pop the N best jobs of the wait
ZSET (highest priority, then FIFO); (3) for each: attempts + 1, status active, a fresh lease
token (from the seq counter, so unique), deadline = Redis TIME + lease, entry in the active
ZSET, a 'claimed' event; return its payload and meta hash. Entries whose hash says anything
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
Returns: {wait_ms, then per claimed job: id, token, attempt, deadline_ms, payload, meta hash
          as a flat field/value list}. wait_ms is, when nothing was claimed, the time until the
          earliest scheduled job is due (a worker blocks at most that long), else 0.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, psuffix, queue, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[8]))
for _, id in ipairs(due) do
  local jk = prefix .. id
  local prio = tonumber(redis.call('HGET', jk, 'priority') or '0')
  local seq = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[1], -prio * 1099511627776 + seq, id)
  redis.call('HSET', jk, 'status', 'queued', 'enqueued', now)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'type', 'enqueued', 'ts', now,
             'job', id, 'queue', queue, 'status', 'queued')
end
if #due > 0 then redis.call('ZREM', KEYS[2], unpack(due)) end

local out = {0}
local worker, lease = ARGV[5], tonumber(ARGV[6])
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[7]))
for p = 1, #popped, 2 do
  local id = popped[p]
  local jk = prefix .. id
  if redis.call('HGET', jk, 'status') == 'queued' then
    local token = string.format('%d', redis.call('INCR', KEYS[5]))
    local attempt = redis.call('HINCRBY', jk, 'attempts', 1)
    local deadline = now + lease
    redis.call('HSET', jk, 'status', 'active', 'token', token, 'worker', worker,
               'started', now, 'lease_ms', lease)
    redis.call('ZADD', KEYS[3], deadline, id)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'type', 'claimed', 'ts', now,
               'job', id, 'queue', queue, 'status', 'active', 'attempt', attempt,
               'worker', worker)
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, token, attempt, deadline
    out[n + 5] = redis.call('GET', jk .. psuffix) or ''
    out[n + 6] = redis.call('HGETALL', jk)
  end
end
if #out == 1 then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first > 0 then out[1] = math.max(1, tonumber(first[2]) - now) end
end
return out
