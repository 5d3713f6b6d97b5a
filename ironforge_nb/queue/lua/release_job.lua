--[[ release_job: hand a claimed job back to the queue at once, without waiting for its lease.

A worker that shuts down (SIGTERM past its grace period) releases the jobs it will not finish,
so other workers get them now rather than after the lease expires. The interrupted attempt is
not a failure of the job: it is given back (attempts - 1, no error recorded), the token is
dropped (a late call from the releasing worker is refused as LEASE_LOST), and the job goes to
the FRONT of its priority level (score -priority * 2^40, below every seq), since it had already
reached the head of the line once. Idle workers are woken. The 'released' event of a task of
a DAG run also goes to its run's stream.

KEYS[1] job     HASH meta of the job
KEYS[2] active  ZSET id -> lease deadline (ms)
KEYS[3] wait    ZSET id -> priority/FIFO score
KEYS[4] wake    LIST idle workers block on (a hint only)
KEYS[5] events  STREAM of the queue's transitions
ARGV[1] job_id         id of the job
ARGV[2] token          the caller's lease token
ARGV[3] queue          queue name
ARGV[4] events_maxlen  approximate cap of the events stream
ARGV[5] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
Returns: {1}, or {code, detail} on error: -1 JOB_NOT_FOUND, -2 LEASE_LOST (token differs;
  detail = status), -3 BAD_STATE (not active, e.g. cancelled or completed; detail = status).
]]
local st = redis.call('HMGET', KEYS[1], 'status', 'token', 'attempts', 'priority', 'worker',
                     'run', 'task')
if not st[1] then return {-1, ''} end
if st[2] ~= ARGV[2] then return {-2, st[1]} end
if st[1] ~= 'active' then return {-3, st[1]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local attempts = math.max(0, tonumber(st[3] or '1') - 1)
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[3], -tonumber(st[4] or '0') * 1099511627776, id)
redis.call('HDEL', KEYS[1], 'token', 'started')
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', attempts, 'enqueued', now)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'type', 'released', 'ts', now,
           'job', id, 'queue', ARGV[3], 'status', 'queued', 'worker', st[5] or '')
if st[6] then
  redis.call('XADD', ARGV[5] .. st[6] .. ':events', 'MAXLEN', '~', ARGV[4], '*',
             'type', 'released', 'ts', now, 'run', st[6], 'job', id, 'task', st[7] or '',
             'queue', ARGV[3], 'status', 'queued', 'worker', st[5] or '')
end
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 63)
return {1}
