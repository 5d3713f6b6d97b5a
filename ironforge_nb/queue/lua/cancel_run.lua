--[[ cancel_run: begin the cancel of a run (status cancelled at once) and take its first step.

Steps: (1) a run that is not running is left alone ({0, status}); a run with a walk or skips
still pending is left alone too ({-3, ''}): the caller finishes that work first (walk_run.lua),
so the cancel lands on the tasks as it left them; (2) begin (walk_helpers.lua `cancel_begin`):
the run's status becomes cancelled (claims drop its queued jobs from then on), its walk state is
created, it joins runs:walking, and its ACTIVE jobs are cancelled now (so that no completion,
failure or heartbeat of the run is accepted any more: an active job keeps its lease token, and
its worker's next heartbeat/progress/complete/fail is refused with BAD_STATE 'cancelled', the
signal to stop); (3) the first step of the walk: up to WALK_BUDGET more tasks that have not
ended become cancelled (each leaves its queue's ZSETs, gets `finished`, enters its queue's
cancelled ZSET, with a 'cancelled' event in the queue's and the run's stream). walk_run.lua
does the following steps; the last one sets `finished` and appends 'run_finished' (status
cancelled). The run helpers (run_helpers.lua, walk_helpers.lua) are prepended at load time; the
run's walk, skips and events keys are derived from run_prefix, runs:walking from it too.

KEYS[1] meta    HASH of the run
KEYS[2] queues  SET of the namespace's queue names (their active ZSETs are searched)
ARGV[1] job_prefix     meta hash of job <id> = job_prefix .. id
ARGV[2] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
ARGV[3] queue_prefix   queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[4] events_maxlen  approximate cap of each event stream
ARGV[5] run_id         the run's id
Returns: {1, busy, tasks cancelled so far} (busy = 1: walk_run.lua has steps left), {0, run
  status} when the run had already ended, {-3, ''} when earlier work on the run is pending,
  or {-1, ''} when there is no such run.
]]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {ErrorCode.NOT_FOUND, ''} end
if status ~= RunStatus.RUNNING then return {0, status} end
local ctx, run = run_ctx(ARGV[1], ARGV[2], ARGV[3], ARGV[4]), ARGV[5]
if run_busy(ctx, run) then return {ErrorCode.RUN_BUSY, ''} end
local now = now_ms()
cancel_begin(ctx, run, KEYS[2], now)
local out = walk_step(ctx, run, now, allowance())
return {1, out[1], out[3]}
