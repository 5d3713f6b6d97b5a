--[[ submit_run: create a whole DAG run atomically and idempotently (one script, one call).

Steps: (1) validate every argument (counts, numbers, profile indexes) before the first write,
so a malformed call returns an error and writes nothing; (2) if the run's meta hash exists,
return 'exists' and change nothing (submitting the same run id twice makes one run); (3) store
each distinct function once (SET NX on its content-addressed code key); (4) per task: its job's
meta HASH (queue, priority, attempts 0, max_attempts, backoff_ms, created, status, run, task,
timeout and allow_failure when set) and payload STRING; roots go to their queue's wait ZSET
(status queued, an 'enqueued' event in the queue's and the run's stream), the others are
'waiting' (in no ZSET); (5) the run's tasks HASH (task -> job id), remaining HASH (task ->
parents not completed), children HASH (task -> comma-separated child tasks), its meta HASH
(name, status running, total and counters, created, params, maps, mode), its id in the runs
ZSET, the queues in the queues SET, wake-up hints, a 'run_submitted' event.
The run helpers (run_helpers.lua) are prepended at load time; only run_key/queue_key/run_event
are used here.

KEYS[1] meta       HASH of the run
KEYS[2] tasks      HASH task id -> job id
KEYS[3] remaining  HASH task id -> parents not completed yet
KEYS[4] children   HASH task id -> child task ids, comma-separated
KEYS[5] events     STREAM of the run's transitions
KEYS[6] runs       ZSET run id -> creation time (ms)
KEYS[7] queues     SET of the namespace's queue names
KEYS[8] deleting   HASH of the runs being deleted (delete_runs.lua)
KEYS[8+i] code     STRING code key of function i (i = 1..n_codes)
ARGV[1] job_prefix      meta hash of job <id> = job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix (see run_helpers)
ARGV[4] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[5] events_maxlen   approximate cap of each event stream
ARGV[6] run_id          the run's id
ARGV[7] name            pipeline name
ARGV[8] params          encoded run params ('' = none)
ARGV[9] maps            encoded map table ('' = none)
ARGV[10] mode           'json' or 'pickle'
ARGV[11] n_profiles     P: distinct option profiles
ARGV[12] n_codes        C: functions shipped by value
ARGV[13] n_tasks        N
then P profiles of 6: queue, priority, max_attempts, backoff_ms, timeout ('' = none),
     allow_failure ('0'/'1')
then C code blobs (signed pickles), in KEYS order
then N tasks of 2: a record "<task id> <job id> <profile (1-based)> <parents count>
     <children, comma-separated>" (one space between fields; names never contain spaces),
     and the payload
Returns: 'created', 'exists', or 'deleting' (a run with this id is being deleted: nothing
  written; the caller finishes that deletion and submits again); an error reply (nothing
  written) for malformed arguments.
]]
local P, C, N = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
if not (P and C and N) or #ARGV ~= 13 + 6 * P + C + 2 * N or #KEYS ~= 8 + C then
  return redis.error_reply('ERR submit_run: malformed arguments (counts do not add up)')
end
local profiles = {}
for p = 1, P do
  local b = 13 + 6 * (p - 1)
  local prof = {queue = ARGV[b + 1], priority = tonumber(ARGV[b + 2]),
                attempts = tonumber(ARGV[b + 3]), backoff = tonumber(ARGV[b + 4]),
                timeout = ARGV[b + 5], allow = ARGV[b + 6], roots = 0}
  if prof.queue == '' or not (prof.priority and prof.attempts and prof.backoff) then
    return redis.error_reply('ERR submit_run: malformed profile ' .. p)
  end
  profiles[p] = prof
end
local T = 13 + 6 * P + C  -- ARGV index just before the first task
local records, roots_total = {}, 0
for i = 0, N - 1 do
  local task, jid, p, np, kids = string.match(ARGV[T + 2 * i + 1],
                                              '^(%S+) (%S+) (%d+) (%d+) (%S*)$')
  local prof, nparents = profiles[tonumber(p or '')], tonumber(np or '')
  if not (task and prof and nparents) then
    return redis.error_reply('ERR submit_run: malformed task record ' .. (i + 1))
  end
  records[i + 1] = {task, jid, prof, nparents, kids}
  if nparents == 0 then
    prof.roots = prof.roots + 1
    roots_total = roots_total + 1
  end
end

if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
if redis.call('HEXISTS', KEYS[8], ARGV[6]) == 1 then return 'deleting' end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, psuffix, maxlen, run = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local ctx = run_ctx(prefix, ARGV[3], ARGV[4], maxlen)
for c = 1, C do redis.call('SET', KEYS[8 + c], ARGV[13 + 6 * P + c], 'NX') end

-- one seq block per queue for its roots (gaps are harmless)
local seqs, roots_in = {}, {}
for _, prof in ipairs(profiles) do
  roots_in[prof.queue] = (roots_in[prof.queue] or 0) + prof.roots
end
for q, n in pairs(roots_in) do
  if n > 0 then seqs[q] = redis.call('INCRBY', queue_key(ctx, q, 'seq'), n) - n end
end

local function flush(key, pairs_)
  if #pairs_ > 0 then redis.call('HSET', key, unpack(pairs_)) end
  return {}
end
local tasks, remaining, children = {}, {}, {}
for i = 1, N do
  local r = records[i]
  local task, jid, prof, nparents, kids = r[1], r[2], r[3], r[4], r[5]
  local jk = prefix .. jid
  local f = {'queue', prof.queue, 'priority', prof.priority, 'attempts', 0,
             'max_attempts', prof.attempts, 'backoff_ms', prof.backoff, 'created', now,
             'run', run, 'task', task}
  if prof.timeout ~= '' then f[#f + 1] = 'timeout'; f[#f + 1] = prof.timeout end
  if prof.allow == '1' then f[#f + 1] = 'allow_failure'; f[#f + 1] = '1' end
  if nparents == 0 then
    f[#f + 1] = 'status'; f[#f + 1] = 'queued'
    f[#f + 1] = 'enqueued'; f[#f + 1] = now
    local seq = seqs[prof.queue] + 1
    seqs[prof.queue] = seq
    redis.call('ZADD', queue_key(ctx, prof.queue, 'wait'),
               -prof.priority * 1099511627776 + seq, jid)
    redis.call('XADD', queue_key(ctx, prof.queue, 'events'), 'MAXLEN', '~', maxlen, '*',
               'type', 'enqueued', 'ts', now, 'job', jid, 'queue', prof.queue,
               'status', 'queued')
    run_event(ctx, run, 'enqueued', now, 'job', jid, 'task', task, 'queue', prof.queue,
              'status', 'queued')
  else
    f[#f + 1] = 'status'; f[#f + 1] = 'waiting'
    remaining[#remaining + 1] = task; remaining[#remaining + 1] = nparents
  end
  redis.call('HSET', jk, unpack(f))
  redis.call('SET', jk .. psuffix, ARGV[T + 2 * i])
  tasks[#tasks + 1] = task; tasks[#tasks + 1] = jid
  if kids ~= '' then children[#children + 1] = task; children[#children + 1] = kids end
  -- unpack() has a stack limit: flush the big hashes every 1000 fields
  if #tasks >= 2000 then tasks = flush(KEYS[2], tasks) end
  if #remaining >= 2000 then remaining = flush(KEYS[3], remaining) end
  if #children >= 2000 then children = flush(KEYS[4], children) end
end
flush(KEYS[2], tasks)
flush(KEYS[3], remaining)
flush(KEYS[4], children)

redis.call('HSET', KEYS[1], 'name', ARGV[7], 'status', 'running', 'total', N,
           'waiting', N - roots_total, 'completed', 0, 'failed', 0, 'tolerated', 0,
           'skipped', 0, 'cancelled', 0, 'created', now, 'params', ARGV[8], 'maps', ARGV[9],
           'mode', ARGV[10])
redis.call('ZADD', KEYS[6], now, run)
for q, n in pairs(roots_in) do
  redis.call('SADD', KEYS[7], q)
  if n > 0 then
    local wake, hints = queue_key(ctx, q, 'wake'), {}
    for h = 1, math.min(n, 64) do hints[h] = '1' end
    redis.call('LPUSH', wake, unpack(hints))
    redis.call('LTRIM', wake, 0, 63)
  end
end
run_event(ctx, run, 'run_submitted', now, 'run_status', 'running', 'message',
          ARGV[7] .. ': ' .. N .. ' tasks')
return 'created'
