--[[ release_dead: end at once the leases of a worker known to be gone, without waiting for
them to expire.

A worker's registry entry (keys.py `workers`) is refreshed every 2 s; one not refreshed for
STALE_AFTER seconds (10) belongs to a worker that was killed (SIGKILL, OOM, a lost machine) or
cannot reach Redis, whose leases would otherwise wait out their full length (30 s by default).
The live worker that notices calls this script for each queue the gone worker served: the
first `limit` entries of the active ZSET (the oldest deadlines first: a gone worker's leases
are no longer extended, so they sort early) whose job is active under that worker end as an
expired lease does (lease_expired of lease_helpers.lua): a started one stalls (reason ARGV[9]),
a held one goes back for free. A worker that was merely cut off and comes back is fenced like
any late worker (its calls are refused as LEASE_LOST). The run helpers and lease helpers are
prepended at load time.

KEYS[1] active  ZSET id -> lease deadline (ms)
KEYS[2] wait    ZSET id -> priority/FIFO score
KEYS[3] dead    ZSET id -> time it failed for good (ms)
KEYS[4] events  STREAM of the queue's transitions
KEYS[5] wake    LIST idle workers block on (a hint only)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] queue           queue name
ARGV[3] events_maxlen   approximate cap of the events stream
ARGV[4] limit           how many active entries to look at at most
ARGV[5] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix
ARGV[6] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[7] max_stalls      the default max_stalls (jobs without a max_stalls field)
ARGV[8] worker          the gone worker's name
ARGV[9] reason          why it is considered gone (the stall's reason)
Returns: the number of leases ended.
]]
local now = now_ms()
local prefix, worker = ARGV[1], ARGV[8]
local q = {wait = KEYS[2], dead = KEYS[3], events = KEYS[4], wake = KEYS[5], queue = ARGV[2],
           maxlen = ARGV[3], max_stalls = ARGV[7],
           ctx = run_ctx(prefix, ARGV[5], ARGV[6], ARGV[3])}
local ended = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)) do
  local jk = prefix .. id
  local st = lease_state(jk)
  if st.status == JobStatus.ACTIVE and st.worker == worker then
    redis.call('ZREM', KEYS[1], id)
    lease_expired(q, jk, id, now, st, ARGV[9])
    ended = ended + 1
  end
end
return ended
