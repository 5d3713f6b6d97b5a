--[[ fail_job: record a failed attempt; retry it later or move it to the dead-letter queue.

Steps: (1) fence: the caller's token must be the job's and the job must be active; a resend of
a failure that took effect (its reply lost) answers as the first call did and changes nothing,
even once the job has moved on (`ended` = "<token> fail <status> <due>", lease_fence of
lease_helpers.lua, prepended with run_helpers.lua at load time);
(2) the attempt ends: attempts + 1 (the try in progress, attempts + 1, is charged: only the
task's own errors and timeouts and its success count as attempts, never a stall); append the
error to the history (field error.<n>, n counting every failure of the job ever, value
"<attempt>|<ms>|<error>") and set `error`; (3) if retry is allowed and attempts remain:
status scheduled, due = now + backoff * 2^(attempt-1) (plus up to 25% jitter, capped), a
'retrying' event; else status failed, entry in the dead ZSET, a 'failed' event.
DAG runs (run_helpers.lua, prepended at load time): a job of a run (its hash has a `run`
field) that fails for good counts as failed in its run, its waiting descendants become skipped
(or, with allow_failure, its children are released) and the run is settled; a retry appends a
'retrying' event to the run's stream.

KEYS[1] job        HASH meta of the job
KEYS[2] active     ZSET id -> lease deadline (ms)
KEYS[3] scheduled  ZSET id -> due time (ms)
KEYS[4] dead       ZSET id -> time it failed for good (ms)
KEYS[5] events     STREAM of the queue's transitions
ARGV[1] job_id          id of the job
ARGV[2] token           the caller's lease token
ARGV[3] error           error text
ARGV[4] retry           '1' = retry if attempts remain, '0' = dead letter now
ARGV[5] queue           queue name
ARGV[6] events_maxlen   approximate cap of the events stream
ARGV[7] jitter          random number in [0, 1) drawn by the caller
ARGV[8] max_backoff_ms  cap of one retry delay (ms)
ARGV[9] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[10] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
ARGV[11] queue_prefix   queue keys = queue_prefix .. queue .. ':' .. suffix
Returns: {status, due_ms} (status 'scheduled' with its due time, or 'failed' with 0), or
  {code, detail} on error: -1 JOB_NOT_FOUND, -2 LEASE_LOST (token differs; detail = status),
  -3 BAD_STATE (not active, e.g. cancelled or completed; detail = status).
]]
local refused, again = lease_fence(KEYS[1], ARGV[2], 'fail')
if refused then return refused end
if again then  -- a resend of a failure that took effect: its first answer
  local status, due = string.match(again, '^(%a+) (%d+)')
  return {status, tonumber(due)}
end
local st = redis.call('HMGET', KEYS[1], 'status', 'token', 'attempts', 'max_attempts',
                      'backoff_ms', 'worker')

local now = now_ms()
local id, err, queue, maxlen = ARGV[1], ARGV[3], ARGV[5], ARGV[6]
local attempt = tonumber(st[3] or '0') + 1
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'error', err, 'attempts', string.format('%d', attempt),
           'error.' .. n, string.format('%d|%d|', attempt, now) .. err)
redis.call('ZREM', KEYS[2], id)

if ARGV[4] == '1' and attempt < tonumber(st[4] or '1') then  -- a run's task without retries has none
  local due = now + backoff_ms(st[5], attempt, ARGV[7], ARGV[8])
  redis.call('HSET', KEYS[1], 'status', JobStatus.SCHEDULED,
             'ended', ARGV[2] .. string.format(' fail scheduled %d', due))
  redis.call('ZADD', KEYS[3], due, id)
  add_event(KEYS[5], maxlen, EventType.RETRYING, now,
            'job', id, 'queue', queue, 'status', JobStatus.SCHEDULED, 'attempt', attempt,
            'error', err, 'worker', st[6] or '')
  run_on_retry(run_ctx(ARGV[9], ARGV[10], ARGV[11], maxlen), KEYS[1], id, now, EventType.RETRYING, err)
  return {JobStatus.SCHEDULED, due}
end
redis.call('HSET', KEYS[1], 'status', JobStatus.FAILED, 'finished', now,
           'ended', ARGV[2] .. ' fail failed 0')
redis.call('ZADD', KEYS[4], now, id)
add_event(KEYS[5], maxlen, EventType.FAILED, now,
          'job', id, 'queue', queue, 'status', JobStatus.FAILED, 'attempt', attempt,
          'error', err, 'worker', st[6] or '')
run_on_failed(run_ctx(ARGV[9], ARGV[10], ARGV[11], maxlen), KEYS[1], id, now, err)
return {JobStatus.FAILED, 0}
