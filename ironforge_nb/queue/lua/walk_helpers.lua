--[[ walk_helpers: the bounded walks over a run's tasks, cancel and retry.

Not a script on its own: `scripting.assemble` puts this file (after run_helpers.lua, whose
functions it uses) to cancel_run, retry_run and walk_run at load time.

A cancel or a retry of a 100k-task run touches every task: one script doing it all would block
Redis (which runs one script at a time) for the whole walk. So cancel_run and retry_run only
BEGIN a walk (cheap, atomic: what makes the run read right from then on) and take its first
step; the rest is done WALK_BUDGET tasks per step by walk_run.lua, called by the canceller or
retrier itself until the end (Run.cancel and Run.retry_failed return when it is done), and by
anyone else who finds the run in the namespace's runs:walking ZSET (every worker's reaper, a
Run.wait, a delete): a crash between steps leaves the walk in Redis, and the next caller goes
on from there. The state of a walk is the run's `walk` HASH:
  kind       'cancel' or 'retry'
  phase      retry only: 'parents', 'reset', then 'queue' (below)
  pos        the next task position to visit (job ids are run .. '.' .. position)
  offset     retry 'parents' only: where in the children list of task `pos` to resume
  now        the ms time the walk began: the `finished` time of every task it cancels
  total      the run's task count
  cancelled, waiting, retried, queued   what the walk did so far (its reply)

Cancel. The begin step sets the run's status to cancelled at once (Run.status and views read it
cancelled from then on; claims drop the queued jobs of a cancelled run, claim_helpers.lua), and
cancels the run's ACTIVE jobs right away (found in the active ZSETs of the namespace's queues,
which hold what workers have in hand, not the run's size), so that no completion, failure or
heartbeat of the run is accepted from the first step on, as with one atomic cancel. Then each
step cancels the next tasks that have not ended (waiting, queued, scheduled): each leaves its
queue's ZSETs, becomes cancelled with `finished` = the walk's `now`, enters its queue's
cancelled ZSET, with a 'cancelled' event in the queue's and the run's stream; the run's
counters follow step by step. The last step sets `finished` and appends 'run_finished'.

Retry (the tasks failed, skipped or cancelled when the walk began: R). The begin step sets the
run's status to running and removes `finished`. Phase 'parents': each task of R that failed
with allow_failure (its children were released as if it had completed) gets each of its
children that is waiting or in R counted again in `remaining` (it reruns first). Phase
'reset': each task of R leaves its queue's dead/cancelled ZSET, gets attempts 0 and loses its
token, worker, times and current error (the history stays), becomes waiting, and the run's
counters move it from failed/skipped/cancelled to waiting; its remaining count is then exactly
its parents not completed (the `remaining` HASH counts parents not released; phase 'parents'
put back the tolerated failures), so a task with none left goes to the run's `ready` LIST, the
others get a 'waiting' event. Phase 'queue': the ready tasks still waiting are queued
(run_enqueue: their queue's wait ZSET, 'enqueued' events). The last step appends
'run_submitted' ("retry: N tasks"). Nothing of R is claimable before phase 'queue', and skips
asked for meanwhile wait until the walk is over (run_helpers.lua), so a failure during the walk
lands on the tasks as an atomic retry would have left them.

The same statuses, counters and events as one atomic script, task for task, when the run's
tasks do not move during the walk; only the order of the events of different tasks differs.
]]

local LIVE = {waiting = true, queued = true, scheduled = true, active = true}
local RETRIED = {failed = true, skipped = true, cancelled = true}

-- cancel one task that has not ended (the work of one atomic cancel, for one task)
local function cancel_task(ctx, run, jid, st, now)
  local jk, q = ctx.job_prefix .. jid, st[2]
  redis.call('ZREM', queue_key(ctx, q, QueueKey.WAIT), jid)
  redis.call('ZREM', queue_key(ctx, q, QueueKey.SCHEDULED), jid)
  redis.call('ZREM', queue_key(ctx, q, QueueKey.ACTIVE), jid)
  redis.call('ZADD', queue_key(ctx, q, QueueKey.CANCELLED), now, jid)
  redis.call('HSET', jk, 'status', JobStatus.CANCELLED, 'finished', now)
  add_event(queue_key(ctx, q, QueueKey.EVENTS), ctx.maxlen, EventType.CANCELLED, now,
            'job', jid, 'queue', q, 'status', JobStatus.CANCELLED)
  run_event(ctx, run, EventType.CANCELLED, now, 'job', jid, 'task', st[3], 'queue', q,
            'status', JobStatus.CANCELLED)
end

-- count `cancelled` (and `waiting` of them) in the run's meta hash and in the walk's state
local function count_cancelled(ctx, run, cancelled, waiting)
  if cancelled == 0 then return end
  local mk, wk = run_key(ctx, run, 'meta'), run_key(ctx, run, 'walk')
  redis.call('HINCRBY', mk, JobStatus.CANCELLED, cancelled)
  redis.call('HINCRBY', wk, JobStatus.CANCELLED, cancelled)
  if waiting > 0 then redis.call('HINCRBY', mk, JobStatus.WAITING, -waiting) end
end

-- the walk is over: the run leaves runs:walking unless skips are pending
local function walk_done(ctx, run)
  redis.call('DEL', run_key(ctx, run, 'walk'))
  if redis.call('EXISTS', run_key(ctx, run, 'skips')) == 0 then
    redis.call('ZREM', ctx.walking, run)
  end
end

-- begin a cancel: status cancelled, walk state, the run's active jobs cancelled now
local function cancel_begin(ctx, run, queues, now)
  local mk = run_key(ctx, run, 'meta')
  redis.call('HSET', mk, 'status', RunStatus.CANCELLED)
  redis.call('HSET', run_key(ctx, run, 'walk'), 'kind', 'cancel', 'pos', 0, 'now', now,
             'total', redis.call('HGET', mk, 'total'), JobStatus.CANCELLED, 0)
  redis.call('ZADD', ctx.walking, now, run)
  local mine, n = run .. '.', 0
  for _, q in ipairs(redis.call('SMEMBERS', queues)) do
    for _, jid in ipairs(redis.call('ZRANGE', queue_key(ctx, q, QueueKey.ACTIVE), 0, -1)) do
      if string.sub(jid, 1, #mine) == mine then
        local st = redis.call('HMGET', ctx.job_prefix .. jid, 'status', 'queue', 'task', 'run')
        if st[4] == run and LIVE[st[1]] then
          cancel_task(ctx, run, jid, st, now)
          n = n + 1
        end
      end
    end
  end
  count_cancelled(ctx, run, n, 0)
end

-- one step of a cancel walk (w: the walk's fields, a: the step's allowance); returns
-- whether the walk is over and how many tasks it has cancelled in all
local function cancel_step(ctx, run, w, a)
  local stop, total, now = tonumber(w.pos), tonumber(w.total), w.now
  local cancelled, waiting = 0, 0
  while stop < total and a.left > 0 do
    local jid = run .. '.' .. stop
    stop = stop + 1
    spend(a, 1)
    local st = redis.call('HMGET', ctx.job_prefix .. jid, 'status', 'queue', 'task')
    if LIVE[st[1]] then
      cancel_task(ctx, run, jid, st, now)
      cancelled = cancelled + 1
      if st[1] == JobStatus.WAITING then waiting = waiting + 1 end
    end
  end
  count_cancelled(ctx, run, cancelled, waiting)
  local wk = run_key(ctx, run, 'walk')
  redis.call('HSET', wk, 'pos', stop)
  local all = tonumber(redis.call('HGET', wk, JobStatus.CANCELLED))
  if stop < total then return false, all end
  redis.call('HSET', run_key(ctx, run, 'meta'), 'finished', now)
  run_ended(ctx, run)
  run_event(ctx, run, EventType.RUN_FINISHED, now, 'run_status', RunStatus.CANCELLED)
  walk_done(ctx, run)
  return true, all
end

-- begin a retry: status running again, walk state (phase 'parents')
local function retry_begin(ctx, run, now)
  local mk = run_key(ctx, run, 'meta')
  redis.call('HSET', mk, 'status', RunStatus.RUNNING)
  redis.call('HDEL', mk, 'finished', 'failure')
  redis.call('ZREM', ctx.ended, run)
  redis.call('HSET', run_key(ctx, run, 'walk'), 'kind', 'retry', 'phase', 'parents', 'pos', 0,
             'offset', 0, 'now', now, 'total', redis.call('HGET', mk, 'total'), 'retried', 0,
             JobStatus.QUEUED, 0)
  redis.call('ZADD', ctx.walking, now, run)
end

-- phase 'parents': the children of tolerated failures in R count them again; returns the
-- position and offset reached
local function retry_parents(ctx, run, pos, offset, total, a)
  local children, tasks = run_key(ctx, run, 'children'), run_key(ctx, run, 'tasks')
  local remaining = run_key(ctx, run, 'remaining')
  while pos < total and a.left > 0 do
    local st = redis.call('HMGET', ctx.job_prefix .. run .. '.' .. pos, 'status',
                          'allow_failure', 'task')
    spend(a, 1)
    local kids = ''
    if st[1] == JobStatus.FAILED and st[2] == '1' then
      kids = redis.call('HGET', children, st[3]) or ''
    end
    local at = offset + 1
    while at <= #kids and a.left > 0 do
      local child
      child, at = next_child(kids, at)
      spend(a, 1)
      local jid = redis.call('HGET', tasks, child)
      local cs = jid and redis.call('HGET', ctx.job_prefix .. jid, 'status')
      if cs == JobStatus.WAITING or RETRIED[cs] then redis.call('HINCRBY', remaining, child, 1) end
    end
    if at <= #kids then return pos, at - 1 end
    pos, offset = pos + 1, 0
  end
  return pos, offset
end

-- phase 'reset': the tasks of R become waiting; the ones with no parent left are ready
local function retry_reset(ctx, run, pos, total, now, a)
  local remaining, ready = run_key(ctx, run, 'remaining'), run_key(ctx, run, 'ready')
  local n = {failed = 0, skipped = 0, cancelled = 0, tolerated = 0, waiting = 0}
  local stop = pos
  while stop < total and a.left > 0 do
    local jid = run .. '.' .. stop
    stop = stop + 1
    spend(a, 1)
    local jk = ctx.job_prefix .. jid
    local st = redis.call('HMGET', jk, 'status', 'queue', 'allow_failure', 'task')
    if RETRIED[st[1]] then
      n[st[1]] = n[st[1]] + 1
      if st[1] == JobStatus.FAILED and st[3] == '1' then n.tolerated = n.tolerated + 1 end
      redis.call('ZREM', queue_key(ctx, st[2], QueueKey.DEAD), jid)
      redis.call('ZREM', queue_key(ctx, st[2], QueueKey.CANCELLED), jid)
      redis.call('HDEL', jk, 'token', 'worker', 'started', 'finished', JobField.ENQUEUED, 'error',
                 'message', 'lease_ms', 'stalls', 'claims', JobField.STALLED)
      redis.call('HSET', jk, 'attempts', 0, JobField.PROGRESS, 0, 'status', JobStatus.WAITING)
      n.waiting = n.waiting + 1
      if tonumber(redis.call('HGET', remaining, st[4]) or '0') <= 0 then
        redis.call('HSET', remaining, st[4], 0)
        redis.call('RPUSH', ready, jid)
      else
        run_event(ctx, run, EventType.WAITING, now, 'job', jid, 'task', st[4], 'queue', st[2],
                  'status', JobStatus.WAITING)
      end
    end
  end
  local mk = run_key(ctx, run, 'meta')
  for _, name in ipairs({JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED, 'tolerated'}) do
    if n[name] > 0 then redis.call('HINCRBY', mk, name, -n[name]) end
  end
  if n.waiting > 0 then
    redis.call('HINCRBY', mk, JobStatus.WAITING, n.waiting)
    redis.call('HINCRBY', run_key(ctx, run, 'walk'), 'retried', n.waiting)
  end
  return stop
end

-- phase 'queue': the ready tasks still waiting are queued; returns true when none is left
local function retry_queue(ctx, run, now, a)
  local ready, queued = run_key(ctx, run, 'ready'), 0
  while a.left > 0 do
    local jid = redis.call('LPOP', ready)
    if not jid then break end
    spend(a, 1)
    local st = redis.call('HMGET', ctx.job_prefix .. jid, 'status', 'queue', 'priority', 'task')
    if st[1] == JobStatus.WAITING then
      run_enqueue(ctx, run, st[4], jid, now, {st[2], st[3]})
      queued = queued + 1
    end
  end
  if queued > 0 then
    redis.call('HINCRBY', run_key(ctx, run, 'meta'), JobStatus.WAITING, -queued)
    redis.call('HINCRBY', run_key(ctx, run, 'walk'), JobStatus.QUEUED, queued)
  end
  return redis.call('EXISTS', ready) == 0
end

-- one step of a retry walk (w: the walk's fields; `now`: the time of this step); returns
-- whether the walk is over, and how many tasks it has reset and queued so far
local function retry_step(ctx, run, w, now, a)
  local wk, total, began = run_key(ctx, run, 'walk'), tonumber(w.total), w.now
  if w.phase == 'parents' then
    local pos, offset = retry_parents(ctx, run, tonumber(w.pos), tonumber(w.offset), total,
                                      a)
    if pos < total then
      redis.call('HSET', wk, 'pos', pos, 'offset', offset)
    else
      redis.call('HSET', wk, 'phase', 'reset', 'pos', 0, 'offset', 0)
    end
  elseif w.phase == 'reset' then
    local pos = retry_reset(ctx, run, tonumber(w.pos), total, began, a)
    redis.call('HSET', wk, 'pos', pos)
    if pos >= total then redis.call('HSET', wk, 'phase', 'queue') end
  elseif retry_queue(ctx, run, began, a) then
    local c = redis.call('HMGET', wk, 'retried', JobStatus.QUEUED)
    run_event(ctx, run, EventType.RUN_SUBMITTED, began, 'run_status', RunStatus.RUNNING,
              'message', 'retry: ' .. c[1] .. ' tasks')
    walk_done(ctx, run)
    run_settle(ctx, run, now)  -- what ran during the walk may have ended the run
    return true, tonumber(c[1]), tonumber(c[2])
  end
  local c = redis.call('HMGET', wk, 'retried', JobStatus.QUEUED)
  return false, tonumber(c[1]), tonumber(c[2])
end

-- the run's walk as a table of its fields (nil when none is in progress)
local function walk_state(ctx, run)
  local raw = redis.call('HGETALL', run_key(ctx, run, 'walk'))
  if #raw == 0 then return nil end
  local w = {}
  for i = 1, #raw, 2 do w[raw[i]] = raw[i + 1] end
  return w
end

-- one bounded step of whatever the run has pending: its walk, else its skips. Returns {busy
-- (1 while work is left), kind, counts}: kind 'cancel' with {tasks cancelled so far}, 'retry'
-- with {reset so far, queued so far}, 'skip' or 'none' with {}
local function walk_step(ctx, run, now, a)
  local w = walk_state(ctx, run)
  local out
  if w and w.kind == 'cancel' then
    local done, n = cancel_step(ctx, run, w, a)
    out = {done, 'cancel', n}
  elseif w then
    local done, retried, queued = retry_step(ctx, run, w, now, a)
    out = {done, 'retry', retried, queued}
  elseif redis.call('EXISTS', run_key(ctx, run, 'skips')) == 1 then
    local done = skip_walk(ctx, run, now, a)
    if done then
      redis.call('ZREM', ctx.walking, run)
      run_settle(ctx, run, now)
    end
    out = {done, 'skip'}
  else
    redis.call('ZREM', ctx.walking, run)
    out = {true, 'none'}
  end
  out[1] = (not out[1] or run_busy(ctx, run)) and 1 or 0
  return out
end
