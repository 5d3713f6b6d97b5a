--[[ update_progress: set a job's progress (and message) and append a 'progress' event.

O(1) whatever the payload size (P0-2): it writes two fields of the meta hash and never reads or
rewrites the payload key. Fenced like heartbeat_job.lua.

KEYS[1] job     HASH meta of the job
KEYS[2] events  STREAM of the queue's transitions
ARGV[1] job_id         id of the job
ARGV[2] token          the caller's lease token
ARGV[3] progress       a number in [0, 1]
ARGV[4] has_message    '1' to set ARGV[5] as the message
ARGV[5] message        free text
ARGV[6] queue          queue name
ARGV[7] events_maxlen  approximate cap of the events stream
Returns: {1}, or {code, detail} on error: -1 JOB_NOT_FOUND, -2 LEASE_LOST (detail = status),
  -3 BAD_STATE (not active; detail = status).
]]
local st = redis.call('HMGET', KEYS[1], 'status', 'token')
if not st[1] then return {ErrorCode.JOB_NOT_FOUND, ''} end
if st[2] ~= ARGV[2] then return {ErrorCode.LEASE_LOST, st[1]} end
if st[1] ~= JobStatus.ACTIVE then return {ErrorCode.BAD_STATE, st[1]} end
local now = string.format('%d', now_ms())
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], JobField.PROGRESS, ARGV[3], 'message', ARGV[5])
  add_event(KEYS[2], ARGV[7], EventType.PROGRESS, now,
            'job', ARGV[1], 'queue', ARGV[6], 'status', JobStatus.ACTIVE, JobField.PROGRESS, ARGV[3],
            'message', ARGV[5])
else
  redis.call('HSET', KEYS[1], JobField.PROGRESS, ARGV[3])
  add_event(KEYS[2], ARGV[7], EventType.PROGRESS, now,
            'job', ARGV[1], 'queue', ARGV[6], 'status', JobStatus.ACTIVE, JobField.PROGRESS, ARGV[3])
end
return {1}
