--[[ release_job: hand a claimed job back to the queue at once, without waiting for its lease.

A worker that shuts down (SIGTERM past its grace period), or that revokes a prefetched lease
stuck behind a long task, releases the jobs it will not run, so other workers get them now
rather than after the lease expires. Nothing is charged (lease_release of lease_helpers.lua):
neither `attempts` (which only the task's own outcomes move) nor `stalls`; the token is
dropped (a late call from the releasing worker is refused as LEASE_LOST, except a resend of
this very call, answered {1} again: `ended` = "<token> release "), and the job goes to
the FRONT of its priority level (score -priority * 2^40, below every seq), since it had already
reached the head of the line once. Idle workers are woken. The 'released' event of a task of
a DAG run also goes to its run's stream. The run helpers (run_helpers.lua) and lease helpers
(lease_helpers.lua) are prepended at load time.

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
ARGV[6] held_only      '1': release only a HELD lease (no `started` field: its executor has not
                       taken it up); a started one is left as it is and the answer is {0}. A
                       worker handing back a prefetched lease sends '1': its executor may have
                       marked it started (start_jobs.lua) just before the hand-back arrived,
                       and then runs it, so it must stay that worker's.
Returns: {1} released, {0} not released (held_only and started), or {code, detail} on error: -1 JOB_NOT_FOUND, -2 LEASE_LOST (token differs;
  detail = status), -3 BAD_STATE (not active, e.g. cancelled or completed; detail = status).
]]
local refused, again = lease_fence(KEYS[1], ARGV[2], 'release')
if refused then return refused end
if again then return {1} end  -- a resend of a release that took effect
if ARGV[6] == '1' and redis.call('HEXISTS', KEYS[1], 'started') == 1 then return {0} end
local now = now_ms()
local q = {wait = KEYS[3], wake = KEYS[4], events = KEYS[5], queue = ARGV[3], maxlen = ARGV[4],
           ctx = run_ctx('', ARGV[5], '', ARGV[4])}
redis.call('ZREM', KEYS[2], ARGV[1])
lease_release(q, KEYS[1], ARGV[1], now, lease_state(KEYS[1]))
redis.call('HSET', KEYS[1], 'ended', ARGV[2] .. ' release ')
return {1}
