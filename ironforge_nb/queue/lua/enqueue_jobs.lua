--[[ enqueue_jobs: create one or more jobs in a queue (one round trip per chunk).

Each job gets a meta HASH and a payload STRING (written once, never rewritten). A job is then
queued (wait ZSET), scheduled (delay > 0: scheduled ZSET at now + delay) or waiting (created for
a DAG run, in no ZSET until its parents are done). A job id that already exists is skipped, so
retrying a chunk (after NOSCRIPT, a reconnect or a restart) never duplicates a job.

Wait score = -priority * 2^40 + seq: ZPOPMIN takes the highest priority first and, within one
priority, the lowest seq (FIFO). |priority| <= 1000 and seq < 2^40 keep scores exact doubles.

KEYS[1] wait       ZSET id -> priority/FIFO score
KEYS[2] scheduled  ZSET id -> due time (ms)
KEYS[3] wake       LIST idle workers block on (a hint only)
KEYS[4] events     STREAM of the queue's transitions
KEYS[5] seq        STRING counter (FIFO order, lease tokens)
KEYS[6] queues     SET of the namespace's queue names
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  the payload of job <id> is job_prefix .. id .. payload_suffix
ARGV[3] queue           queue name
ARGV[4] events_maxlen   approximate cap of the events stream
ARGV[5...] jobs, each: id, payload, priority, delay_ms, max_attempts, backoff_ms,
           waiting ('1' = create in status waiting), n_meta, then n_meta field/value pairs
Returns: the number of jobs created (ids that already existed are not counted).
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, psuffix, queue, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local created, ready = 0, 0
local ranked = {}  -- score, id pairs for one ZADD (flushed every 1000 jobs: unpack limits)
local seq = nil
local i = 5
while i <= #ARGV do
  local id, nmeta = ARGV[i], tonumber(ARGV[i + 7])
  local jk = prefix .. id
  if redis.call('EXISTS', jk) == 0 then
    local delay = tonumber(ARGV[i + 3])
    local f = {'queue', queue, 'priority', ARGV[i + 2], 'attempts', 0,
               'max_attempts', ARGV[i + 4], 'backoff_ms', ARGV[i + 5], 'created', now}
    for m = 1, 2 * nmeta do f[#f + 1] = ARGV[i + 7 + m] end
    local status, event = 'queued', 'enqueued'
    if ARGV[i + 6] == '1' then
      status, event = 'waiting', 'waiting'
    elseif delay > 0 then
      status, event = 'scheduled', 'scheduled'
      redis.call('ZADD', KEYS[2], now + delay, id)
    else
      -- one INCRBY reserves a seq block for the whole call (gaps are harmless)
      if not seq then
        local most = math.floor((#ARGV - 4) / 8)
        seq = redis.call('INCRBY', KEYS[5], most) - most
      end
      seq = seq + 1
      ranked[#ranked + 1] = -tonumber(ARGV[i + 2]) * 1099511627776 + seq
      ranked[#ranked + 1] = id
      if #ranked >= 2000 then
        redis.call('ZADD', KEYS[1], unpack(ranked))
        ranked = {}
      end
      f[#f + 1] = 'enqueued'; f[#f + 1] = now
      ready = ready + 1
    end
    f[#f + 1] = 'status'; f[#f + 1] = status
    redis.call('HSET', jk, unpack(f))
    redis.call('SET', jk .. psuffix, ARGV[i + 1])
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'type', event, 'ts', now,
               'job', id, 'queue', queue, 'status', status)
    created = created + 1
  end
  i = i + 8 + 2 * nmeta
end
if #ranked > 0 then redis.call('ZADD', KEYS[1], unpack(ranked)) end
if ready > 0 then
  local hints = {}
  for h = 1, math.min(ready, 64) do hints[h] = '1' end
  redis.call('LPUSH', KEYS[3], unpack(hints))
  redis.call('LTRIM', KEYS[3], 0, 63)
end
if created > 0 then redis.call('SADD', KEYS[6], queue) end
return created
