--[[ enqueue_jobs: create one or more jobs with the same options in a queue (one round trip).

Each job gets a meta HASH and a payload STRING (written once, never rewritten) and an event.
The jobs are queued (wait ZSET) or scheduled (delay > 0: scheduled ZSET at now + delay); the
tasks of a DAG run are created by submit_run.lua instead. A job id that already
exists is skipped (as is an id repeated within the call), so retrying a chunk (after NOSCRIPT,
a reconnect or a restart) never duplicates a job.

Cost per job is one HSET and one XADD: the existence check is one EXISTS over up to 1000 ids
(per-id checks only when some exist), payloads go in one MSET and wait entries in one ZADD per
1000 jobs, and one INCRBY reserves the FIFO seqs of the whole call. Fields equal to their
default are left out of the hash: `attempts` (0) until the first claim; readers default it.
Numbers go to redis.call as strings made once (times) or with '%d' (scores): Redis 7.0 turns
each Lua number argument into text with a slow '%.17g', about 1 µs apiece.

Wait score: common.lua's wait_score (priority first, then FIFO by seq).

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
ARGV[5] priority        -1000 to 1000 (higher first)
ARGV[6] delay_ms        0 = ready now
ARGV[7] max_attempts    attempts before the dead-letter queue
ARGV[8] backoff_ms      base of the exponential retry delay
ARGV[9] n_meta          number of extra meta fields, then n_meta field/value pairs
then the jobs, each: id, payload
Returns: the number of jobs created (ids that already existed are not counted).
]]
local now = now_ms()
local prefix, psuffix, queue, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay, nmeta = tonumber(ARGV[6]), tonumber(ARGV[9])
local first = 10 + 2 * nmeta
local status, event = JobStatus.QUEUED, EventType.ENQUEUED
if delay > 0 then
  status, event = JobStatus.SCHEDULED, EventType.SCHEDULED
end
local ts = string.format('%d', now)
local fields = {'queue', queue, 'priority', ARGV[5], 'max_attempts', ARGV[7],
                'backoff_ms', ARGV[8], 'created', ts, 'status', status}
if status == JobStatus.QUEUED then fields[#fields + 1] = JobField.ENQUEUED; fields[#fields + 1] = ts end
for m = 10, first - 1 do fields[#fields + 1] = ARGV[m] end

local seq = 0
if status == JobStatus.QUEUED then  -- one INCRBY reserves a seq per job of the call (gaps are harmless)
  local most = (#ARGV - first + 1) / 2
  seq = redis.call('INCRBY', KEYS[5], string.format('%d', most)) - most
end
local base = wait_score(ARGV[5], 0)  -- + the job's seq
local due = string.format('%d', now + delay)
local created, seen = 0, {}
for from = first, #ARGV - 1, 2000 do  -- 1000 jobs at a time (Lua's unpack has limits)
  local upto = math.min(from + 1998, #ARGV - 1)
  local keys = {}
  for j = from, upto, 2 do keys[#keys + 1] = prefix .. ARGV[j] end
  local none = redis.call('EXISTS', unpack(keys)) == 0
  local payloads, ranked, k = {}, {}, 0
  for j = from, upto, 2 do
    local id = ARGV[j]
    k = k + 1
    local jk = keys[k]
    if not seen[id] and (none or redis.call('EXISTS', jk) == 0) then
      seen[id] = true
      redis.call('HSET', jk, unpack(fields))
      payloads[#payloads + 1] = jk .. psuffix
      payloads[#payloads + 1] = ARGV[j + 1]
      add_event(KEYS[4], maxlen, event, ts,
                'job', id, 'queue', queue, 'status', status)
      if status == JobStatus.QUEUED then
        seq = seq + 1
        ranked[#ranked + 1] = string.format('%d', base + seq)
      else
        ranked[#ranked + 1] = due
      end
      ranked[#ranked + 1] = id
    end
  end
  if #payloads > 0 then
    redis.call('MSET', unpack(payloads))
    created = created + #payloads / 2
    if status == JobStatus.QUEUED then
      redis.call('ZADD', KEYS[1], unpack(ranked))
    elseif status == JobStatus.SCHEDULED then
      redis.call('ZADD', KEYS[2], unpack(ranked))
    end
  end
end
if created > 0 then
  if status == JobStatus.QUEUED then
    wake_workers(KEYS[3], created)
  end
  redis.call('SADD', KEYS[6], queue)
end
return created
