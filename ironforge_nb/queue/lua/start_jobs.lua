--[[ start_jobs: record that held leases (claimed ahead, see claim_helpers.lua) have started.

A worker's executor runs its prefetched leases one after another; the worker marks each one
started (field `started` = now) when the executor takes it up, in the same call as the
completion before it when there is one (complete_job.lua), else with this script. From then on
an expired lease is a stall, not a free release (lease_helpers.lua). A job that moved on (not
active under that token any more) is left alone.
The claim helpers (claim_helpers.lua, for mark_started) are prepended at load time.

KEYS[i]  HASH meta of job i (i = 1..m)
ARGV[i]  its lease token
Returns: how many of the m jobs are marked started (those still active under their token).
]]
local now = now_ms()
local ts = string.format('%d', now)  -- as text once: Redis writes a Lua number with '%.17g'
local marked = 0
for i = 1, #KEYS do
  marked = marked + mark_started(KEYS[i], ARGV[i], ts)
end
return marked
