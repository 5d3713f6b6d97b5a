--[[ reap_expired: end the leases whose deadline has passed: a held one for free, a started
one as a stall (lease_helpers.lua).

A worker that died (or hung past its lease) leaves its jobs in the active ZSET with deadlines in
the past. Each such job (at most `limit` per call, oldest deadline first) leaves the active
ZSET and loses its token (so the late worker's heartbeat/progress/complete/fail are refused as
LEASE_LOST), then: a HELD lease (claimed ahead for a busy executor, never started) goes back to
the front of its priority level at no charge ('released' event); a STARTED lease is a stall:
stalls + 1 and queued again at once, no backoff and no attempt charged ('stalled' event), or,
past the job's max_stalls (ARGV[7] when it has none), failed for good with "stalled N times"
(dead-letter queue, 'stalled' and 'failed' events, its run settled). `attempts` is never
charged here: a dead worker is not a failure of the task's code (DESIGN §4-§5). Every worker
may run this at any time: the script is atomic and bounded, and a job is reaped once because it
leaves the active ZSET. The run helpers (run_helpers.lua) and lease helpers (lease_helpers.lua)
are prepended at load time.

KEYS[1] active  ZSET id -> lease deadline (ms)
KEYS[2] wait    ZSET id -> priority/FIFO score
KEYS[3] dead    ZSET id -> time it failed for good (ms)
KEYS[4] events  STREAM of the queue's transitions
KEYS[5] wake    LIST idle workers block on (a hint only)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] queue           queue name
ARGV[3] events_maxlen   approximate cap of the events stream
ARGV[4] limit           how many expired leases to reap at most
ARGV[5] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix
ARGV[6] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[7] max_stalls      the default max_stalls (jobs without a max_stalls field)
Returns: the number of jobs reaped.
]]
local now = now_ms()
local prefix = ARGV[1]
local q = {wait = KEYS[2], dead = KEYS[3], events = KEYS[4], wake = KEYS[5], queue = ARGV[2],
           maxlen = ARGV[3], max_stalls = ARGV[7],
           ctx = run_ctx(prefix, ARGV[5], ARGV[6], ARGV[3])}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0,
                           tonumber(ARGV[4]))
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local jk = prefix .. id
  local st = lease_state(jk)
  if st.status == JobStatus.ACTIVE then lease_expired(q, jk, id, now, st, 'lease expired') end
end
return #expired
