--[[ heartbeat_job: extend a job's lease (fenced by the lease token).

The new deadline is Redis TIME + lease_ms (a worker may also shorten its own lease). Refused
when the token is stale (the job expired and was reaped or handed to another attempt) or the job
is no longer active (e.g. cancelled: the worker should stop).

KEYS[1] job     HASH meta of the job
KEYS[2] active  ZSET id -> lease deadline (ms)
ARGV[1] job_id    id of the job
ARGV[2] token     the caller's lease token
ARGV[3] lease_ms  new lease length from now (ms)
Returns: {deadline_ms}, or {code, detail} on error: -1 JOB_NOT_FOUND, -2 LEASE_LOST (detail =
  status), -3 BAD_STATE (not active; detail = status).
]]
local st = redis.call('HMGET', KEYS[1], 'status', 'token')
if not st[1] then return {ErrorCode.JOB_NOT_FOUND, ''} end
if st[2] ~= ARGV[2] then return {ErrorCode.LEASE_LOST, st[1]} end
if st[1] ~= JobStatus.ACTIVE then return {ErrorCode.BAD_STATE, st[1]} end
local now = now_ms()
local deadline = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], string.format('%d', deadline), ARGV[1])  -- '%d': exact, and cheap
redis.call('HSET', KEYS[1], 'lease_ms', ARGV[3])
return {deadline}
