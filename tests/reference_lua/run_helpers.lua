--[[ run_helpers: the DAG-run bookkeeping shared by every script that ends a task of a run.

Not a script on its own: `lua.lua_source` prepends this file to complete_job, fail_job,
reap_expired, cancel_job, submit_run, cancel_run and retry_run at load time (one copy of the
logic, no include preprocessor; error line numbers in those scripts are offset by this file).
Each host script builds a context with run_ctx() from its own ARGV and calls one entry point:

  run_on_complete(ctx, id, now, r)         a job completed: count it, release the children
                                           whose remaining-parent counter reaches 0, settle
                                           (r: the job's run, task, queue, attempts, worker,
                                           which the host has read already)
  run_on_failed(ctx, jk, id, now, err)     a job failed for good (dead letter): count it; its
                                           waiting descendants are skipped, or, when the task
                                           has allow_failure=1, its children are released
  run_on_retry(ctx, jk, id, now, type, err) an attempt failed and will be retried: event only
  run_on_cancel(ctx, jk, id, now, prev)    a job was cancelled (prev = its previous status)
  trim_ended(zset, keep, prefix, psuffix, rsuffix, lsuffix)  queue retention (completed and
                                           cancelled ZSETs)
                                           that never deletes the keys of a run's jobs

A job belongs to a run when its meta hash has a `run` field (and `task`). Key layout, from the
prefixes the host passes (see keys.py, `Keys.run_prefix` and `Keys.queue_prefix`):
  run keys    run_prefix .. <run> .. ':meta' | ':tasks' | ':remaining' | ':children' | ':events'
  queue keys  queue_prefix .. <queue> .. ':wait' | ':wake' | ':events' | ':seq'
  job keys    job_prefix .. <job id>
Run meta counters: total, waiting, completed, failed (tolerated = failed with allow_failure),
skipped, cancelled; the rest are queued/scheduled/active. A run settles when every task is
terminal: succeeded (all completed, or failed with allow_failure), failed (a task failed),
cancelled (only cancellations and their skipped descendants); then `finished` and a
'run_finished' event. Every transition appends to the run's event stream (fields of
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

local function run_ctx(job_prefix, run_prefix, queue_prefix, maxlen)
  return {job_prefix = job_prefix, run_prefix = run_prefix, queue_prefix = queue_prefix,
          maxlen = maxlen}
end

local function run_key(ctx, run, suffix)
  return ctx.run_prefix .. run .. ':' .. suffix
end

local function queue_key(ctx, queue, suffix)
  return ctx.queue_prefix .. queue .. ':' .. suffix
end

-- XADD one event to the run's stream; `...` are extra field/value pairs (no nils)
local function run_event(ctx, run, etype, now, ...)
  redis.call('XADD', run_key(ctx, run, 'events'), 'MAXLEN', '~', ctx.maxlen, '*',
             'type', etype, 'ts', now, 'run', run, ...)
end

-- LPUSH a wake-up hint; the list is cut back to 64 hints only when it grows past them
local function wake_hint(wake)
  if redis.call('LPUSH', wake, '1') > 64 then redis.call('LTRIM', wake, 0, 63) end
end

-- queue a waiting job of a run in its own queue; st = the job's {queue, priority} fields
local function run_enqueue(ctx, run, task, jid, now, st)
  local jk = ctx.job_prefix .. jid
  local q = st[1]
  local seq = redis.call('INCR', queue_key(ctx, q, 'seq'))
  redis.call('ZADD', queue_key(ctx, q, 'wait'), -tonumber(st[2] or '0') * 1099511627776 + seq,
             jid)
  redis.call('HSET', jk, 'status', 'queued', 'enqueued', now)
  redis.call('XADD', queue_key(ctx, q, 'events'), 'MAXLEN', '~', ctx.maxlen, '*',
             'type', 'enqueued', 'ts', now, 'job', jid, 'queue', q, 'status', 'queued')
  wake_hint(queue_key(ctx, q, 'wake'))
  run_event(ctx, run, 'enqueued', now, 'job', jid, 'task', task, 'queue', q,
            'status', 'queued')
end

-- one parent of each child of `task` is done: queue the children that have no parent left
local function run_release(ctx, run, task, now)
  local kids = redis.call('HGET', run_key(ctx, run, 'children'), task)
  if not kids or kids == '' then return end
  local remaining, tasks = run_key(ctx, run, 'remaining'), run_key(ctx, run, 'tasks')
  local released = 0
  for child in string.gmatch(kids, '[^,]+') do
    if redis.call('HINCRBY', remaining, child, -1) <= 0 then
      local jid = redis.call('HGET', tasks, child)
      local st = jid and redis.call('HMGET', ctx.job_prefix .. jid, 'status', 'queue', 'priority')
      if st and st[1] == 'waiting' then
        run_enqueue(ctx, run, child, jid, now, {st[2], st[3]})
        released = released + 1
      end
    end
  end
  if released > 0 then redis.call('HINCRBY', run_key(ctx, run, 'meta'), 'waiting', -released) end
end

-- breadth-first over the children lists: every waiting descendant of `task` becomes skipped
local function run_skip(ctx, run, task, now)
  local children, tasks = run_key(ctx, run, 'children'), run_key(ctx, run, 'tasks')
  local todo, head, skipped = {task}, 1, 0
  while head <= #todo do
    local kids = redis.call('HGET', children, todo[head])
    head = head + 1
    if kids and kids ~= '' then
      for child in string.gmatch(kids, '[^,]+') do
        local jid = redis.call('HGET', tasks, child)
        local jk = ctx.job_prefix .. (jid or '')
        local st = redis.call('HMGET', jk, 'status', 'queue')
        if jid and st[1] == 'waiting' then
          redis.call('HSET', jk, 'status', 'skipped', 'finished', now)
          redis.call('XADD', queue_key(ctx, st[2], 'events'), 'MAXLEN', '~', ctx.maxlen, '*',
                     'type', 'skipped', 'ts', now, 'job', jid, 'queue', st[2],
                     'status', 'skipped')
          run_event(ctx, run, 'skipped', now, 'job', jid, 'task', child, 'queue', st[2],
                    'status', 'skipped')
          skipped = skipped + 1
          todo[#todo + 1] = child
        end
      end
    end
  end
  if skipped > 0 then
    local mk = run_key(ctx, run, 'meta')
    redis.call('HINCRBY', mk, 'skipped', skipped)
    redis.call('HINCRBY', mk, 'waiting', -skipped)
  end
end

-- when every task has ended, give the run its final status
local function run_settle(ctx, run, now)
  local mk = run_key(ctx, run, 'meta')
  local m = redis.call('HMGET', mk, 'status', 'total', 'completed', 'failed', 'skipped',
                       'cancelled', 'tolerated')
  if m[1] ~= 'running' then return end
  local total, done = tonumber(m[2]), tonumber(m[3] or '0')
  local failed, tolerated = tonumber(m[4] or '0'), tonumber(m[7] or '0')
  local cancelled = tonumber(m[6] or '0')
  if done + failed + tonumber(m[5] or '0') + cancelled < total then return end
  local status = 'failed'
  if done + tolerated >= total then
    status = 'succeeded'
  elseif failed == tolerated and cancelled > 0 then
    status = 'cancelled'
  end
  redis.call('HSET', mk, 'status', status, 'finished', now)
  run_event(ctx, run, 'run_finished', now, 'run_status', status)
end

local function run_on_complete(ctx, id, now, r)
  if not r[1] then return end
  run_event(ctx, r[1], 'completed', now, 'job', id, 'task', r[2], 'queue', r[3],
            'status', 'completed', 'attempt', r[4] or '0', 'worker', r[5] or '')
  redis.call('HINCRBY', run_key(ctx, r[1], 'meta'), 'completed', 1)
  run_release(ctx, r[1], r[2], now)
  run_settle(ctx, r[1], now)
end

local function run_on_failed(ctx, jk, id, now, err)
  local r = redis.call('HMGET', jk, 'run', 'task', 'queue', 'attempts', 'worker',
                       'allow_failure')
  if not r[1] then return end
  run_event(ctx, r[1], 'failed', now, 'job', id, 'task', r[2], 'queue', r[3],
            'status', 'failed', 'attempt', r[4] or '0', 'worker', r[5] or '', 'error', err)
  local mk = run_key(ctx, r[1], 'meta')
  redis.call('HINCRBY', mk, 'failed', 1)
  if r[6] == '1' then
    redis.call('HINCRBY', mk, 'tolerated', 1)
    run_release(ctx, r[1], r[2], now)
  else
    run_skip(ctx, r[1], r[2], now)
  end
  run_settle(ctx, r[1], now)
end

local function run_on_retry(ctx, jk, id, now, etype, err)
  local r = redis.call('HMGET', jk, 'run', 'task', 'queue', 'attempts', 'worker')
  if not r[1] then return end
  run_event(ctx, r[1], etype, now, 'job', id, 'task', r[2], 'queue', r[3],
            'status', 'scheduled', 'attempt', r[4] or '0', 'worker', r[5] or '', 'error', err)
end

local function run_on_cancel(ctx, jk, id, now, prev)
  local r = redis.call('HMGET', jk, 'run', 'task', 'queue')
  if not r[1] then return end
  run_event(ctx, r[1], 'cancelled', now, 'job', id, 'task', r[2], 'queue', r[3],
            'status', 'cancelled')
  local mk = run_key(ctx, r[1], 'meta')
  redis.call('HINCRBY', mk, 'cancelled', 1)
  if prev == 'waiting' then redis.call('HINCRBY', mk, 'waiting', -1) end
  run_skip(ctx, r[1], r[2], now)
  run_settle(ctx, r[1], now)
end
