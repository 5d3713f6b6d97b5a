--[[ stall_job: the executor process running a job died under a live worker: a stall.

The worker saw its executor die (killed by a signal: the OOM killer, a SIGKILL, a crash) while
it ran the task. That is not a failure of the task's code: the job is charged a stall, not an
attempt (lease_expired of lease_helpers.lua, as for an expired lease: a HELD lease, which the
executor died before marking started, goes back for free, since its code never began): stalls + 1, `stalled` = "<reason> (worker <w>)",
queued again at once (front of its priority level, no backoff), or, past its max_stalls,
failed for good with "stalled N times" (dead-letter queue, its run settled). Fenced by the
lease token like fail_job.lua; a resend of a call that took effect answers as it did
(`ended` = "<token> stall <status>", lease_fence of lease_helpers.lua).
The run helpers (run_helpers.lua) and lease helpers (lease_helpers.lua) are prepended at load
time.

KEYS[1] job     HASH meta of the job
KEYS[2] active  ZSET id -> lease deadline (ms)
KEYS[3] wait    ZSET id -> priority/FIFO score
KEYS[4] dead    ZSET id -> time it failed for good (ms)
KEYS[5] events  STREAM of the queue's transitions
KEYS[6] wake    LIST idle workers block on (a hint only)
ARGV[1] job_id          id of the job
ARGV[2] token           the caller's lease token
ARGV[3] reason          what happened, e.g. "the executor process was killed by SIGKILL"
ARGV[4] queue           queue name
ARGV[5] events_maxlen   approximate cap of the events stream
ARGV[6] max_stalls      the default max_stalls (jobs without a max_stalls field)
ARGV[7] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[8] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix
ARGV[9] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
Returns: {status} ('queued' again, or 'failed' past max_stalls), or {code, detail} on error:
  -1 JOB_NOT_FOUND, -2 LEASE_LOST (token differs; detail = status), -3 BAD_STATE (not active,
  e.g. cancelled; detail = status).
]]
local refused, again = lease_fence(KEYS[1], ARGV[2], 'stall')
if refused then return refused end
if again then return {again} end  -- a resend of a stall that took effect: its first answer
local now = now_ms()
local q = {wait = KEYS[3], dead = KEYS[4], events = KEYS[5], wake = KEYS[6], queue = ARGV[4],
           maxlen = ARGV[5], max_stalls = ARGV[6],
           ctx = run_ctx(ARGV[7], ARGV[8], ARGV[9], ARGV[5])}
redis.call('ZREM', KEYS[2], ARGV[1])
local status = lease_expired(q, KEYS[1], ARGV[1], now, lease_state(KEYS[1]), ARGV[3])
if status == EventType.RELEASED then status = JobStatus.QUEUED end  -- held: its executor never took it up
redis.call('HSET', KEYS[1], 'ended', ARGV[2] .. ' stall ' .. status)
return {status}
