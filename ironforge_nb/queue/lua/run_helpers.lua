--[[ run_helpers: the DAG-run bookkeeping shared by every script that ends a task of a run.

Not a script on its own: `scripting.assemble` puts this file before the scripts of
`scripting.RUN_HELPER_USERS` at load time (one copy of the logic; a Lua error names this file and
its line), after the prelude, common.lua and outbox_helpers.lua. Each host script builds a context with run_ctx() from its own ARGV
and calls one entry point. Webhooks: run_on_complete and run_on_failed also add the
job.completed / job.failed event of EVERY job (of a run or not) to the webhook outbox, and
run_ended the run.<status> event (outbox_helpers.lua; with no endpoint registered, one read of
an empty key per script call):

  run_on_complete(ctx, id, now, r)         a job completed: count it, release the children
                                           whose remaining-parent counter reaches 0, settle
                                           (r: the job's run, task, queue, attempts, worker,
                                           which the host has read already); with ctx.batch,
                                           the counting and settling wait for
  run_later_done(ctx, now)                 (once per call, after the last completion)
  run_on_failed(ctx, jk, id, now, err)     a job failed for good (dead letter): count it; its
                                           waiting descendants are skipped, or, when the task
                                           has allow_failure=1, its children are released
  run_on_retry(ctx, jk, id, now, type, err) an attempt failed and will be retried: event only
  run_on_cancel(ctx, jk, id, now, prev)    a job was cancelled (prev = its previous status)
  trim_ended(zset, keep, prefix, psuffix, rsuffix, lsuffix)  queue retention (completed and
                                           cancelled ZSETs)
                                           that never deletes the keys of a run's jobs
  skip_walk(ctx, run, now, a)              one bounded step of the run's pending skips
                                           (walk_run.lua); true when none are left

Bounded walks. Redis runs one script at a time, so no script walks a whole run: skipping the
descendants of a failed or cancelled task visits at most WALK_BUDGET children in the script of
the failure; the rest stays in the run's `skips` LIST ("<offset> <task>": the children of
<task> from byte <offset> of its children list on), the run joins the namespace's
`runs:walking` ZSET, and later steps (walk_run.lua, called by whoever needs the run settled:
Run.wait, cancel, retry, delete, and every worker's reaper) finish it. While a run has a walk
in progress (its `walk` HASH: a cancel or a retry, walk_helpers.lua) new skips only queue up
in `skips`, walked once that walk is done, so that they land on the tasks as the walk left
them, as if the walk had been one atomic script. A run with pending work is never settled
(run_settle waits): the step that ends the work settles it. The namespace's runs,
runs:ended and runs:walking keys are `ctx.run_prefix` minus its 'run:' tail plus 'runs',
'runs:ended', 'runs:walking' (keys.py RUNS, RUNS_ENDED, RUNS_WALKING); the webhook keys start
with that plus 'webhooks:' (keys.py WEBHOOKS, `Keys.webhook_prefix`).

A job belongs to a run when its meta hash has a `run` field (and `task`). Key layout, from the
prefixes the host passes (see keys.py, `Keys.run_prefix` and `Keys.queue_prefix`):
  run keys    run_prefix .. <run> .. ':meta' | ':tasks' | ':remaining' | ':children' | ':events'
  queue keys  queue_prefix .. <queue> .. ':wait' | ':wake' | ':events' | ':seq'
  job keys    job_prefix .. <job id>
Run meta counters: total, waiting, completed, failed (tolerated = failed with allow_failure),
skipped, cancelled; the rest are queued/scheduled/active; `failure` is "<task>: <error's last
line>" of the last failure not tolerated (run.failed's error; a retry removes it). A run settles when every task is
terminal and no walk is pending: succeeded (all completed, or failed with allow_failure),
failed (a task failed), cancelled (only cancellations and their skipped descendants); then
`finished`, a 'run_finished' event, and its id in runs:ended (the retention of
delete_runs.lua). Every transition appends to the run's event stream (fields of
ironforge_nb.status.Event).
]]
-- Keep a queue's completed (or cancelled) ZSET at `keep` entries: pop the oldest (at most 100
-- per call) and delete their meta hash, payload, result and logs keys, EXCEPT for jobs of a DAG run
-- (a `run` field): those only leave the ZSET. A run's jobs live as long as the run (its
-- parents' results feed later tasks, run.result() reads them); runs have their own bounded
-- retention (delete_runs.lua). The ZSET stays a bounded list of recent completions.
local function trim_ended(zset, keep, prefix, psuffix, rsuffix, lsuffix)
  local excess = redis.call('ZCARD', zset) - tonumber(keep)
  if excess <= 0 then return end
  local old = redis.call('ZPOPMIN', zset, math.min(excess, 100))
  for p = 1, #old, 2 do
    local ok = prefix .. old[p]
    if redis.call('HEXISTS', ok, 'run') == 0 then
      redis.call('DEL', ok, ok .. psuffix, ok .. rsuffix, ok .. lsuffix)
    end
  end
end

-- one step of a bounded walk visits at most WALK_BUDGET tasks (or children), and stops early
-- once WALK_MS have passed (Redis TIME, read every WALK_TICK of them): a few ms of Redis time
-- however loaded the machine is
local WALK_BUDGET, WALK_MS, WALK_TICK = 256, 4, 16

-- what a walk step may still spend: {left = units, stop = ms deadline, tick = units to the
-- next look at the clock}
local function allowance()
  return {left = WALK_BUDGET, stop = clock_ms() + WALK_MS, tick = WALK_TICK}
end

-- spend `n` units of `a`; true while some are left
local function spend(a, n)
  a.left, a.tick = a.left - n, a.tick - n
  if a.tick <= 0 and a.left > 0 then
    a.tick = WALK_TICK
    if clock_ms() >= a.stop then a.left = 0 end
  end
  return a.left > 0
end

local function run_ctx(job_prefix, run_prefix, queue_prefix, maxlen)
  local ns = string.sub(run_prefix, 1, -5)  -- '{ns}:run:' -> '{ns}:'
  return {job_prefix = job_prefix, run_prefix = run_prefix, queue_prefix = queue_prefix,
          maxlen = maxlen, runs = ns .. 'runs', ended = ns .. 'runs:ended',
          walking = ns .. 'runs:walking', hooks = hook_ctx(ns .. 'webhooks:', run_prefix),
          -- hints for the wake list defer_wake that the host pushes itself (complete_job.lua)
          defer_wake = nil, deferred = 0,
          -- a host completing several jobs sets batch = true: its claimed, enqueued and
          -- completed events gather in tb and qb (task_event of common.lua, for run and queue
          -- streams; it writes them with task_events_flush) and the counters of completions
          -- in `later`, written by run_later_done (see there)
          batch = false, tb = nil, qb = nil, later = nil}
end

local function run_key(ctx, run, suffix)
  return ctx.run_prefix .. run .. ':' .. suffix
end

local function queue_key(ctx, queue, suffix)
  return ctx.queue_prefix .. queue .. ':' .. suffix
end

-- one event on the run's stream; `...` are extra field/value pairs (no nils). A host that
-- gathers its task events (ctx.tb, see task_event of common.lua) has them written first.
local function run_event(ctx, run, etype, now, ...)
  if ctx.tb then task_events_flush(ctx.tb) end
  add_run_event(ctx.run_prefix, run, ctx.maxlen, etype, now, ...)
end

-- queue a waiting job of a run in its own queue; st = the job's {queue, priority} fields
local function run_enqueue(ctx, run, task, jid, now, st)
  local jk = ctx.job_prefix .. jid
  local q = st[1]
  local seq = redis.call('INCR', queue_key(ctx, q, QueueKey.SEQ))
  redis.call('ZADD', queue_key(ctx, q, QueueKey.WAIT), string.format('%d', wait_score(st[2], seq)),
             jid)
  redis.call('HSET', jk, 'status', JobStatus.QUEUED, JobField.ENQUEUED, now)
  if ctx.batch then
    ctx.qb = task_event(ctx.qb, EventType.JOB_EVENTS, 'queue', queue_key(ctx, q, QueueKey.EVENTS),
                        ctx.maxlen, q, now, nil, EventType.ENQUEUED, jid, '', q, JobStatus.QUEUED,
                        '')
  else
    add_event(queue_key(ctx, q, QueueKey.EVENTS), ctx.maxlen, EventType.ENQUEUED, now,
              'job', jid, 'queue', q, 'status', JobStatus.QUEUED)
  end
  local wake = queue_key(ctx, q, QueueKey.WAKE)
  if wake == ctx.defer_wake then  -- the host pushes it once it knows whether its claim took it
    ctx.deferred = ctx.deferred + 1
  else
    wake_workers(wake, 1)
  end
  if ctx.batch then
    ctx.tb = task_event(ctx.tb, EventType.TASK_EVENTS, 'run', run_key(ctx, run, 'events'),
                        ctx.maxlen, run, now, nil, EventType.ENQUEUED, jid, task, q,
                        JobStatus.QUEUED, '')
  else
    run_event(ctx, run, EventType.ENQUEUED, now, 'job', jid, 'task', task, 'queue', q,
              'status', JobStatus.QUEUED)
  end
end

-- one parent of each child of `task` is done: queue the children that have no parent left
local function run_release(ctx, run, task, now)
  local kids = redis.call('HGET', run_key(ctx, run, 'children'), task)
  if not kids or kids == '' then return end
  local remaining, tasks = run_key(ctx, run, 'remaining'), run_key(ctx, run, 'tasks')
  local released = 0
  for child in string.gmatch(kids, '[^,]+') do
    if redis.call('HINCRBY', remaining, child, '-1') <= 0 then
      local jid = redis.call('HGET', tasks, child)
      local st = jid and redis.call('HMGET', ctx.job_prefix .. jid, 'status', 'queue', 'priority')
      if st and st[1] == JobStatus.WAITING then
        run_enqueue(ctx, run, child, jid, now, {st[2], st[3]})
        released = released + 1
      end
    end
  end
  if released > 0 then
    local later = ctx.batch and ctx.later and ctx.later[run]
    if later then  -- counted by run_later_done, once per run and call
      later.released = later.released + released
    else
      redis.call('HINCRBY', run_key(ctx, run, 'meta'), JobStatus.WAITING,
                 string.format('%d', -released))
    end
  end
end

-- the task name at byte `pos` of a comma-separated children list, and where the next starts
local function next_child(kids, pos)
  local comma = string.find(kids, ',', pos, true) or (#kids + 1)
  return string.sub(kids, pos, comma - 1), comma + 1
end

-- a walk of the run is in progress (cancel or retry) or skips are pending
local function run_busy(ctx, run)
  return redis.call('EXISTS', run_key(ctx, run, 'walk'), run_key(ctx, run, 'skips')) > 0
end

-- skip the waiting children of `task`, from byte `offset` of its children list on, while
-- the allowance `a` lasts; each child skipped goes to the end of the skips LIST (its own
-- children come later: breadth first). Returns the offset to resume from (nil when the list
-- is done); adds the skips to acc.skipped.
local function skip_children(ctx, run, task, offset, now, a, acc)
  local kids = redis.call('HGET', run_key(ctx, run, 'children'), task) or ''
  local tasks, skips = run_key(ctx, run, 'tasks'), run_key(ctx, run, 'skips')
  local pos = offset + 1
  while pos <= #kids and a.left > 0 do
    local child
    child, pos = next_child(kids, pos)
    spend(a, 1)
    local jid = redis.call('HGET', tasks, child)
    if jid then
      local jk = ctx.job_prefix .. jid
      local st = redis.call('HMGET', jk, 'status', 'queue')
      if st[1] == JobStatus.WAITING then
        redis.call('HSET', jk, 'status', JobStatus.SKIPPED, 'finished', now)
        add_event(queue_key(ctx, st[2], QueueKey.EVENTS), ctx.maxlen, EventType.SKIPPED, now,
                  'job', jid, 'queue', st[2], 'status', JobStatus.SKIPPED)
        run_event(ctx, run, EventType.SKIPPED, now, 'job', jid, 'task', child, 'queue', st[2],
                  'status', JobStatus.SKIPPED)
        acc.skipped = acc.skipped + 1
        redis.call('RPUSH', skips, '0 ' .. child)
      end
    end
  end
  if pos <= #kids then return pos - 1 end
  return nil
end

-- one bounded step of the run's pending skips (breadth first over the skips LIST, while the
-- allowance `a` lasts: a unit per child and per entry); returns true when no skip is left
local function skip_walk(ctx, run, now, a)
  local skips = run_key(ctx, run, 'skips')
  local acc = {skipped = 0}
  while a.left > 0 do
    local entry = redis.call('LPOP', skips)
    if not entry then break end
    spend(a, 1)
    local space = string.find(entry, ' ', 1, true)
    local task = string.sub(entry, space + 1)
    local resume = skip_children(ctx, run, task, tonumber(string.sub(entry, 1, space - 1)),
                                 now, a, acc)
    if resume then redis.call('LPUSH', skips, resume .. ' ' .. task) end
  end
  if acc.skipped > 0 then
    local mk = run_key(ctx, run, 'meta')
    redis.call('HINCRBY', mk, JobStatus.SKIPPED, acc.skipped)
    redis.call('HINCRBY', mk, JobStatus.WAITING, -acc.skipped)
  end
  return redis.call('EXISTS', skips) == 0
end

-- every waiting descendant of `task` becomes skipped: at most WALK_BUDGET children now (none
-- while a walk of the run is in progress), the rest by later steps (see Bounded walks)
local function run_skip(ctx, run, task, now)
  local walking = redis.call('EXISTS', run_key(ctx, run, 'walk')) == 1
  redis.call('RPUSH', run_key(ctx, run, 'skips'), '0 ' .. task)
  if walking or not skip_walk(ctx, run, now, allowance()) then
    redis.call('ZADD', ctx.walking, 'NX', now, run)
  end
end

-- the run has ended: listed in runs:ended (by creation time, like runs) for the retention
local function run_ended(ctx, run)
  local created = redis.call('ZSCORE', ctx.runs, run)
  if created then redis.call('ZADD', ctx.ended, created, run) end
  hook_run(ctx.hooks, run, ctx.failure)
end

-- when every task has ended (and no walk is pending), give the run its final status
local function run_settle(ctx, run, now)
  local mk = run_key(ctx, run, 'meta')
  local m = redis.call('HMGET', mk, 'status', 'total', JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.SKIPPED,
                       JobStatus.CANCELLED, 'tolerated')
  if m[1] ~= RunStatus.RUNNING then return end
  local total, done = tonumber(m[2]), tonumber(m[3] or '0')
  local failed, tolerated = tonumber(m[4] or '0'), tonumber(m[7] or '0')
  local cancelled = tonumber(m[6] or '0')
  if done + failed + tonumber(m[5] or '0') + cancelled < total or run_busy(ctx, run) then
    return
  end
  local status = RunStatus.FAILED
  if done + tolerated >= total then
    status = RunStatus.SUCCEEDED
  elseif failed == tolerated and cancelled > 0 then
    status = RunStatus.CANCELLED
  end
  redis.call('HSET', mk, 'status', status, 'finished', now)
  run_ended(ctx, run)
  run_event(ctx, run, EventType.RUN_FINISHED, now, 'run_status', status)
end

-- A host completing several jobs in one call (complete_job.lua) sets ctx.batch: the
-- counters of each run it touches (completed, waiting) are then written once per run, and the
-- run settled once, by run_later_done(ctx, now) after the last completion (before anything
-- else of the call reads them: nothing between the completions does). The end state and the
-- stream's order are those of a settle after each completion: a run can only end with its
-- last task's completion, and its 'run_finished' comes after its other events of the call.
local function run_later_done(ctx, now)
  local later = ctx.later
  if not later then return end
  ctx.later = nil
  for _, run in ipairs(later) do
    local c = later[run]
    local mk = run_key(ctx, run, 'meta')
    redis.call('HINCRBY', mk, JobStatus.COMPLETED, string.format('%d', c.completed))
    if c.released > 0 then
      redis.call('HINCRBY', mk, JobStatus.WAITING, string.format('%d', -c.released))
    end
    run_settle(ctx, run, now)
  end
end

local function run_on_complete(ctx, id, now, r)
  hook_job(ctx.hooks, WebhookEvent.JOB_COMPLETED, ctx.job_prefix .. id, id, now, JobStatus.COMPLETED)
  if not r[1] then return end
  local later = ctx.later
  if ctx.batch then
    if not later then
      later = {}
      ctx.later = later
    end
    local c = later[r[1]]
    if not c then
      c = {completed = 0, released = 0}
      later[r[1]] = c
      later[#later + 1] = r[1]
    end
    c.completed = c.completed + 1
  end
  if ctx.batch then
    ctx.tb = task_event(ctx.tb, EventType.TASK_EVENTS, 'run', run_key(ctx, r[1], 'events'),
                        ctx.maxlen, r[1], now, r[5] or '', EventType.COMPLETED, id, r[2], r[3],
                        JobStatus.COMPLETED, r[4] or '0')
  else
    run_event(ctx, r[1], EventType.COMPLETED, now, 'job', id, 'task', r[2], 'queue', r[3],
              'status', JobStatus.COMPLETED, 'attempt', r[4] or '0', 'worker', r[5] or '')
  end
  if ctx.batch then
    run_release(ctx, r[1], r[2], now)
    return
  end
  redis.call('HINCRBY', run_key(ctx, r[1], 'meta'), JobStatus.COMPLETED, '1')
  run_release(ctx, r[1], r[2], now)
  run_settle(ctx, r[1], now)
end

local function run_on_failed(ctx, jk, id, now, err)
  hook_job(ctx.hooks, WebhookEvent.JOB_FAILED, jk, id, now, JobStatus.FAILED)
  local r = redis.call('HMGET', jk, 'run', 'task', 'queue', 'attempts', 'worker',
                       'allow_failure')
  if not r[1] then return end
  run_event(ctx, r[1], EventType.FAILED, now, 'job', id, 'task', r[2], 'queue', r[3],
            'status', JobStatus.FAILED, 'attempt', r[4] or '0', 'worker', r[5] or '', 'error', err)
  local mk = run_key(ctx, r[1], 'meta')
  redis.call('HINCRBY', mk, JobStatus.FAILED, 1)
  if r[6] == '1' then
    redis.call('HINCRBY', mk, 'tolerated', 1)
    run_release(ctx, r[1], r[2], now)
  else
    -- run.failed's error: in this script's context if it settles the run, and in the run's
    -- meta `failure` for a later script that does (another task's end, a walk step)
    ctx.failure = r[2] .. ': ' .. (hook_summary(err) or '')
    redis.call('HSET', mk, 'failure', ctx.failure)
    run_skip(ctx, r[1], r[2], now)
  end
  run_settle(ctx, r[1], now)
end

local function run_on_retry(ctx, jk, id, now, etype, err)
  local r = redis.call('HMGET', jk, 'run', 'task', 'queue', 'attempts', 'worker')
  if not r[1] then return end
  run_event(ctx, r[1], etype, now, 'job', id, 'task', r[2], 'queue', r[3],
            'status', JobStatus.SCHEDULED, 'attempt', r[4] or '0', 'worker', r[5] or '', 'error', err)
end

local function run_on_cancel(ctx, jk, id, now, prev)
  local r = redis.call('HMGET', jk, 'run', 'task', 'queue')
  if not r[1] then return end
  run_event(ctx, r[1], EventType.CANCELLED, now, 'job', id, 'task', r[2], 'queue', r[3],
            'status', JobStatus.CANCELLED)
  local mk = run_key(ctx, r[1], 'meta')
  redis.call('HINCRBY', mk, JobStatus.CANCELLED, 1)
  if prev == JobStatus.WAITING then redis.call('HINCRBY', mk, JobStatus.WAITING, -1) end
  -- while the run's cancel walk is in progress, its descendants are cancelled by it
  if redis.call('HGET', run_key(ctx, r[1], 'walk'), 'kind') ~= 'cancel' then
    run_skip(ctx, r[1], r[2], now)
  end
  run_settle(ctx, r[1], now)
end
