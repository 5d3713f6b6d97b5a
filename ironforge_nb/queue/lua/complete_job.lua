--[[ complete_job: record the success of one or more jobs, then optionally claim the next jobs.

For each completed job: (1) fence: the caller's token must be the job's and the job must be
active (a replay of the same completion, after a lost reply, reports 0 and changes nothing);
(2) store its result (with a TTL), status completed, progress 1, attempts + 1 (the try that
succeeded counts), leave the active ZSET, enter the completed ZSET, a 'completed' event. Then (3) keep the completed ZSET at `retention`
entries: the oldest are removed with their hash, payload, result and logs keys (at most 100
per call),
except jobs of DAG runs, which only leave the ZSET: their keys live as long as their run
(run_helpers.lua `trim_ended`; runs are deleted whole by delete_runs.lua);
(4) mark the held lease start_id (if any) started: the executor that ran the completed jobs
has moved on to it (mark_started() of claim_helpers.lua); (5) if fetch_n > 0 and no completion
was refused, claim up to fetch_n jobs exactly as claim_jobs.lua does (claim_ready() of
claim_helpers.lua, prepended at load time), the first start_n of them started now. Steady-state
workers thus make one call per job, or one per batch of jobs. (6) The wake-up hints of the
children step (2) queued in this queue are pushed last, and only if the claim left some job
waiting there: when it took them all, an idle worker woken by a hint would find nothing (a
CHAIN would wake one per task). Hints for children queued in other queues go out at once.
DAG runs: after step (2) of a job whose hash has a `run` field, run_on_complete (from
run_helpers.lua, prepended at load time) counts it in its run, decrements its children's
remaining-parent counters, queues those reaching zero in their own queues, and settles the run
(each run's counters written, and the run settled, once per call after the last completion:
run_later_done); run and queue keys are derived from the two prefixes passed last in ARGV.
The claimed, enqueued and completed events a call writes are one entry per stream
('task_events' in a run's, 'job_events' in a queue's: task_event of common.lua), written
before any other event of that stream and at the end.

KEYS[1] active     ZSET id -> lease deadline (ms)
KEYS[2] completed  ZSET id -> completion time (ms)
KEYS[3] events     STREAM of the queue's transitions
KEYS[4] wait       ZSET id -> priority/FIFO score
KEYS[5] scheduled  ZSET id -> due time (ms)
KEYS[6] seq        STRING counter (FIFO order, lease tokens)
KEYS[7] receipt    STRING the worker's last claim in this queue (safe resends, see
                   claim_helpers.lua)
KEYS[6+2i], KEYS[7+2i]  job i's meta HASH and result STRING (i = 1..m)
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
ARGV[12] start_n        how many of the next jobs start now (the first ones; the rest held)
ARGV[13] start_id       a held job of the caller that starts now ('' = none)
ARGV[14] start_token    its lease token
ARGV[15] request_id     made once per logical call ('' = none): a resend of a call that ran
                        answers 0 for its completions and returns the same next jobs
ARGV[12+4i..15+4i]      job i: id, token, has_result ('1' = store the result), result bytes
ARGV[#ARGV-2] logs_suffix   logs key = job_prefix .. id .. logs_suffix (retention)
ARGV[#ARGV-1] run_prefix    run keys = run_prefix .. run id .. ':' .. suffix (last but one)
ARGV[#ARGV] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix (last)
Returns: {claim reply, outcomes}: the claim reply as claim_jobs.lua returns it ({0} when nothing
  was claimed), and one outcome per job: 1 completed, 0 replay of a completion, or an error
  {code, detail}: -1 JOB_NOT_FOUND (no hash), -2 LEASE_LOST (token differs; detail = status),
  -3 BAD_STATE (not active, e.g. cancelled; detail = status).
]]
local now = now_ms()
local ts = string.format('%d', now)  -- as text once: Redis writes a Lua number with '%.17g'
local prefix, psuffix, rsuffix = ARGV[1], ARGV[2], ARGV[3]
local queue, maxlen = ARGV[4], ARGV[5]
local rctx = run_ctx(prefix, ARGV[#ARGV - 1], ARGV[#ARGV], maxlen)
local wake = queue_key(rctx, queue, QueueKey.WAKE)
rctx.defer_wake = wake  -- step (6): the hints of children queued here wait for the claim
-- the events of this call: one entry per stream (task_event of common.lua)
-- and each run's counters written and the run settled once (run_later_done)
rctx.batch = true
local outcomes, refused, done = {}, false, {}
for i = 1, (#KEYS - 7) / 2 do  -- job i's ARGV: 12+4i .. 15+4i, then the 3 tail ARGV
  local jk, rk, a = KEYS[6 + 2 * i], KEYS[7 + 2 * i], 12 + 4 * i
  local id = ARGV[a]
  local st = redis.call('HMGET', jk, 'status', 'token', 'attempts', 'worker', 'run', 'task',
                       'queue')
  if not st[1] then outcomes[i] = {ErrorCode.JOB_NOT_FOUND, ''}
  elseif st[2] ~= ARGV[a + 1] then outcomes[i] = {ErrorCode.LEASE_LOST, st[1]}
  elseif st[1] == JobStatus.COMPLETED then outcomes[i] = 0
  elseif st[1] ~= JobStatus.ACTIVE then outcomes[i] = {ErrorCode.BAD_STATE, st[1]}
  else
    if ARGV[a + 2] == '1' then redis.call('SET', rk, ARGV[a + 3], 'PX', ARGV[6]) end
    local attempt = string.format('%d', tonumber(st[3] or '0') + 1)
    redis.call('HSET', jk, 'status', JobStatus.COMPLETED, 'finished', ts, JobField.PROGRESS, '1',
               'attempts', attempt)
    done[#done + 1] = id
    rctx.qb = task_event(rctx.qb, EventType.JOB_EVENTS, 'queue', KEYS[3], maxlen, queue, ts,
                         st[4] or '', EventType.COMPLETED, id, '', queue, JobStatus.COMPLETED,
                         attempt)
    outcomes[i] = 1
    run_on_complete(rctx, id, ts, {st[5], st[6], st[7], attempt, st[4]})
  end
  if type(outcomes[i]) == 'table' then refused = true end
end
run_later_done(rctx, ts)
-- one ZREM and one ZADD per 1000 completed jobs (Lua's unpack has limits)
for from = 1, #done, 1000 do
  local ids, ranked = {}, {}
  for j = from, math.min(from + 999, #done) do
    ids[#ids + 1] = done[j]
    ranked[#ranked + 1] = ts
    ranked[#ranked + 1] = done[j]
  end
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('ZADD', KEYS[2], unpack(ranked))
end

trim_ended(KEYS[2], ARGV[7], prefix, psuffix, rsuffix, ARGV[#ARGV - 2])

if ARGV[13] ~= '' then mark_started(prefix .. ARGV[13], ARGV[14], ts) end

local n = tonumber(ARGV[10])
if n < 1 or refused then
  if rctx.deferred > 0 then wake_workers(wake, rctx.deferred) end
  task_events_flush(rctx.qb)
  task_events_flush(rctx.tb)
  return {{0}, outcomes}
end
local cq = {wait = KEYS[4], scheduled = KEYS[5], active = KEYS[1], events = KEYS[3],
            seq = KEYS[6], prefix = prefix, psuffix = psuffix, rsuffix = rsuffix,
            run_prefix = rctx.run_prefix, queue = queue, maxlen = maxlen, worker = ARGV[8],
            lease = tonumber(ARGV[9]), lease_text = ARGV[9], limit_text = ARGV[11],
            start = tonumber(ARGV[12]), rid = ARGV[15], receipt = KEYS[7], tb = rctx.tb,
            qb = rctx.qb}
local out = claim_ready(cq, now, n)  -- it writes the events of the call (rctx.tb, rctx.qb)
task_events_flush(rctx.qb)  -- a resend's claim writes none: the completions' are still here
task_events_flush(rctx.tb)
-- (6) a child this call queued in its own queue and claimed at once needs no wake-up: the
-- hints of the children queued there are pushed only if the claim left something waiting
-- (a claim that popped fewer than n emptied the wait ZSET), else an idle worker woken by one
-- would claim nothing (in a chain, once per task)
if rctx.deferred > 0 and (cq.popped == nil or cq.popped >= n)
    and redis.call('ZCARD', KEYS[4]) > 0 then
  wake_workers(wake, rctx.deferred)
end
return {out, outcomes}
