--[[ retry_run: begin to run again the tasks of a run that did not complete (failed, skipped,
cancelled), reusing the results of the completed ones, and take the first step.

Steps: (1) nothing to retry (no task counted failed, skipped or cancelled) returns {0, 0}; a
run with a walk or skips still pending returns {-3, ''}: the caller finishes that work first
(walk_run.lua); (2) begin (walk_helpers.lua `retry_begin`): status running again, `finished`
removed, the run leaves runs:ended and joins runs:walking; (3) the first step of the walk
(phases 'parents', 'reset' and 'queue' of walk_helpers.lua: remaining-parent counts
recomputed, each retried job reset to attempts 0 without its token, worker, times and current
error, the error history kept, then queued when no parent is left or waiting otherwise, the
run's counters adjusted). walk_run.lua does the following steps; the last one appends a
'run_submitted' event saying how many tasks rerun. The run helpers (run_helpers.lua,
walk_helpers.lua) are prepended at load time; the run's keys are derived from run_prefix.

KEYS[1] meta       HASH of the run
ARGV[1] job_prefix     meta hash of job <id> = job_prefix .. id
ARGV[2] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
ARGV[3] queue_prefix   queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[4] events_maxlen  approximate cap of each event stream
ARGV[5] run_id         the run's id
Returns: {1, busy, tasks reset so far, of which queued so far} (busy = 1: walk_run.lua has
  steps left), {0, 0} when nothing is to retry, {-3, ''} when earlier work on the run is
  pending, or {-1, ''} when there is no such run.
]]
local m = redis.call('HMGET', KEYS[1], 'status', JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED)
if not m[1] then return {ErrorCode.NOT_FOUND, ''} end
local ctx, run = run_ctx(ARGV[1], ARGV[2], ARGV[3], ARGV[4]), ARGV[5]
if run_busy(ctx, run) then return {ErrorCode.RUN_BUSY, ''} end
if tonumber(m[2] or '0') + tonumber(m[3] or '0') + tonumber(m[4] or '0') == 0 then
  return {0, 0}
end
local now = now_ms()
retry_begin(ctx, run, now)
local out = walk_step(ctx, run, now, allowance())
return {1, out[1], out[3], out[4]}
