--[[ cancel_job: move a job that has not ended yet to status cancelled.

Works from waiting, scheduled, queued and active. An active job leaves the active ZSET (it is no
longer reaped) but keeps its token, so its worker's next heartbeat/progress/complete/fail is
refused with BAD_STATE 'cancelled' (a clear "stop" rather than a lost lease). Cancelled jobs are
kept in the cancelled ZSET with the same retention as completed ones (oldest trimmed with their
keys, logs included, at most 100 per call; jobs of DAG runs only leave the ZSET: their keys live as long as
their run, see run_helpers.lua `trim_ended`). A job that has already ended is left alone.
DAG runs (run_helpers.lua, prepended at load time): a cancelled job of a run counts as
cancelled in its run, its waiting descendants become skipped, and the run is settled.

KEYS[1] job        HASH meta of the job
KEYS[2] wait       ZSET id -> priority/FIFO score
KEYS[3] scheduled  ZSET id -> due time (ms)
KEYS[4] active     ZSET id -> lease deadline (ms)
KEYS[5] cancelled  ZSET id -> cancellation time (ms)
KEYS[6] events     STREAM of the queue's transitions
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] result_suffix   result key = job_prefix .. id .. result_suffix
ARGV[4] queue           queue name
ARGV[5] events_maxlen   approximate cap of the events stream
ARGV[6] job_id          id of the job
ARGV[7] retention       cancelled jobs kept in the queue
ARGV[8] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix
ARGV[9] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[10] logs_suffix    logs key = job_prefix .. id .. logs_suffix (retention)
ARGV[11] request_id     made once per logical call ('' = none): a resend of a cancel that took
                        effect answers as it did (`ended` = "cancel <request id> <previous>")
Returns: {1, previous status} when cancelled, {0, status} when the job had already ended, or
  {code, detail} on error: -1 JOB_NOT_FOUND, -4 WRONG_QUEUE (detail = the job's queue).
]]
local st = redis.call('HMGET', KEYS[1], 'status', 'queue', 'ended')
if not st[1] then return {ErrorCode.JOB_NOT_FOUND, ''} end
if st[2] ~= ARGV[4] then return {ErrorCode.WRONG_QUEUE, st[2] or ''} end
local status = st[1]
if status == JobStatus.COMPLETED or status == JobStatus.FAILED or status == JobStatus.CANCELLED or status == JobStatus.SKIPPED then
  local mine = 'cancel ' .. ARGV[11] .. ' '
  if ARGV[11] ~= '' and st[3] and string.sub(st[3], 1, #mine) == mine then
    return {1, string.sub(st[3], #mine + 1)}  -- a resend of this cancel: its first answer
  end
  return {0, status}
end
local now = now_ms()
local prefix, id = ARGV[1], ARGV[6]
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('HSET', KEYS[1], 'status', JobStatus.CANCELLED, 'finished', now,
           'ended', 'cancel ' .. ARGV[11] .. ' ' .. status)
redis.call('ZADD', KEYS[5], now, id)
add_event(KEYS[6], ARGV[5], EventType.CANCELLED, now,
          'job', id, 'queue', ARGV[4], 'status', JobStatus.CANCELLED)
run_on_cancel(run_ctx(prefix, ARGV[8], ARGV[9], ARGV[5]), KEYS[1], id, now, status)
trim_ended(KEYS[5], ARGV[7], prefix, ARGV[2], ARGV[3], ARGV[10])
return {1, status}
