--[[ walk_run: one bounded step of the work pending on a run: its cancel or retry walk, else
the skips of descendants of its failed or cancelled tasks (see walk_helpers.lua and the
"Bounded walks" section of run_helpers.lua).

Steps: (1) the run is ARGV[5], or, when it is '', the run that has waited longest in
runs:walking; none: {'', 0, 'none'}; (2) a run whose meta HASH is gone (deleted) has its walk
state dropped and leaves runs:walking; (3) one step (at most WALK_BUDGET tasks or children) of
its walk, else of its skips; the step that ends the work settles the run (or, for a cancel,
ends it cancelled). Any client may call it at any time: steps are atomic and resume from the
state in Redis, so two callers only share the work.
The run helpers (run_helpers.lua, walk_helpers.lua) are prepended at load time.

KEYS[1] walking  ZSET run id -> time its walk began (runs:walking)
ARGV[1] job_prefix     meta hash of job <id> = job_prefix .. id
ARGV[2] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
ARGV[3] queue_prefix   queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[4] events_maxlen  approximate cap of each event stream
ARGV[5] run_id         the run to step, or '' for the one waiting longest
Returns: {run id, busy (1 while work is left), kind, counts...}: kind 'cancel' with the tasks
  cancelled so far, 'retry' with the tasks reset and queued so far, 'skip' or 'none' (nothing
  was pending) with no counts.
]]
local ctx, run = run_ctx(ARGV[1], ARGV[2], ARGV[3], ARGV[4]), ARGV[5]
if run == '' then
  run = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not run then return {'', 0, 'none'} end
end
if redis.call('EXISTS', run_key(ctx, run, 'meta')) == 0 then
  redis.call('DEL', run_key(ctx, run, 'walk'), run_key(ctx, run, 'skips'),
             run_key(ctx, run, 'ready'))
  redis.call('ZREM', KEYS[1], run)
  return {run, 0, 'none'}
end
local now = now_ms()
local out = walk_step(ctx, run, now, allowance())
table.insert(out, 1, run)
return out
