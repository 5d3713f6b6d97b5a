--[[ requeue_job: take a job out of the dead-letter queue and queue it again by hand.

The job's attempts, stalls and claims start again from 0 (its error history is kept), it gets a new place at the
back of its priority level, loses its old lease token, and idle workers are woken.

KEYS[1] job     HASH meta of the job
KEYS[2] dead    ZSET id -> time it failed for good (ms)
KEYS[3] wait    ZSET id -> priority/FIFO score
KEYS[4] seq     STRING counter (FIFO order, lease tokens)
KEYS[5] wake    LIST idle workers block on (a hint only)
KEYS[6] events  STREAM of the queue's transitions
ARGV[1] job_id         id of the job
ARGV[2] queue          queue name
ARGV[3] events_maxlen  approximate cap of the events stream
ARGV[4] request_id     made once per logical call ('' = none): a resend of a requeue that took
                       effect answers {1} again (`ended` = "requeue <request id>")
A task of a DAG run is refused: its run counted it failed and skipped its descendants, which
the run's own retry (retry_run.lua) puts back together; this script would not.
Returns: {1}, or {code, detail} on error: -1 JOB_NOT_FOUND, -3 BAD_STATE (not failed; detail =
  status), -4 WRONG_QUEUE (detail = the job's queue), -5 RUN_TASK (detail = its run).
]]
local st = redis.call('HMGET', KEYS[1], 'status', 'queue', 'priority', 'run', 'ended')
if not st[1] then return {ErrorCode.JOB_NOT_FOUND, ''} end
if st[2] ~= ARGV[2] then return {ErrorCode.WRONG_QUEUE, st[2] or ''} end
if st[4] then return {ErrorCode.RUN_TASK, st[4]} end
if st[1] ~= JobStatus.FAILED then
  if ARGV[4] ~= '' and st[5] == 'requeue ' .. ARGV[4] then return {1} end
  return {ErrorCode.BAD_STATE, st[1]}
end
local now = now_ms()
local id = ARGV[1]
local seq = redis.call('INCR', KEYS[4])
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[3], wait_score(st[3], seq), id)
redis.call('HDEL', KEYS[1], 'token', 'finished', 'started', 'stalls', 'claims', JobField.STALLED)
redis.call('HSET', KEYS[1], 'status', JobStatus.QUEUED, 'attempts', 0, JobField.ENQUEUED, now,
           'ended', 'requeue ' .. ARGV[4])
add_event(KEYS[6], ARGV[3], EventType.REQUEUED, now,
          'job', id, 'queue', ARGV[2], 'status', JobStatus.QUEUED)
wake_workers(KEYS[5], 1)
return {1}
