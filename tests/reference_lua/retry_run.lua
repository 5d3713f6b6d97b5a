--[[ retry_run: run again the tasks of a run that did not complete (failed, skipped, cancelled),
reusing the results of the completed ones.

Steps: (1) read every task's job status; nothing to retry returns {0, 0}; (2) the remaining-
parent count of each task to retry is recomputed: its parents that are not completed (the
retried ones included); a waiting task that keeps its place but had a retried parent whose
failure was tolerated (allow_failure, so that parent already counted as done) gets that parent
counted again; (3) each retried job leaves its queue's dead/cancelled ZSET, gets attempts 0 (stalls and
claims too) and loses its token, worker, times and current error (the error history stays), and becomes queued
(no parent left: in its queue's wait ZSET, a wake-up hint, 'enqueued' events) or waiting
('waiting' event in the run's stream); (4) the run's counters are adjusted, its status is
running again, `finished` is removed, and a 'run_submitted' event says how many tasks rerun.
The run helpers (run_helpers.lua) are prepended at load time.

KEYS[1] meta       HASH of the run
KEYS[2] tasks      HASH task id -> job id
KEYS[3] remaining  HASH task id -> parents not completed yet
KEYS[4] children   HASH task id -> child task ids, comma-separated
ARGV[1] job_prefix     meta hash of job <id> = job_prefix .. id
ARGV[2] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
ARGV[3] queue_prefix   queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[4] events_maxlen  approximate cap of each event stream
ARGV[5] run_id         the run's id
Returns: {tasks retried, of which queued at once}, or {-1, ''} when there is no such run.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ctx, run = run_ctx(ARGV[1], ARGV[2], ARGV[3], ARGV[4]), ARGV[5]
local retried = {failed = true, skipped = true, cancelled = true}
local all = redis.call('HGETALL', KEYS[2])
local info, redo, order = {}, {}, {}
for i = 1, #all, 2 do
  local st = redis.call('HMGET', ctx.job_prefix .. all[i + 1], 'status', 'queue',
                        'allow_failure', 'priority')
  info[all[i]] = {jid = all[i + 1], status = st[1], queue = st[2], allow = st[3],
                  priority = st[4]}
  if retried[st[1]] then
    redo[all[i]] = 0
    order[#order + 1] = all[i]
  end
end
if #order == 0 then return {0, 0} end

local kids = redis.call('HGETALL', KEYS[4])
for i = 1, #kids, 2 do
  local parent = info[kids[i]]
  if parent and parent.status ~= 'completed' then
    local tolerated = parent.status == 'failed' and parent.allow == '1'
    for child in string.gmatch(kids[i + 1], '[^,]+') do
      if redo[child] then
        redo[child] = redo[child] + 1
      elseif tolerated and info[child] and info[child].status == 'waiting' then
        redis.call('HINCRBY', KEYS[3], child, 1)
      end
    end
  end
end

local counts = {failed = 0, skipped = 0, cancelled = 0, tolerated = 0}
local queued, waiting = 0, 0
for _, task in ipairs(order) do
  local it = info[task]
  local jk = ctx.job_prefix .. it.jid
  counts[it.status] = counts[it.status] + 1
  if it.status == 'failed' and it.allow == '1' then counts.tolerated = counts.tolerated + 1 end
  redis.call('ZREM', queue_key(ctx, it.queue, 'dead'), it.jid)
  redis.call('ZREM', queue_key(ctx, it.queue, 'cancelled'), it.jid)
  redis.call('HDEL', jk, 'token', 'worker', 'started', 'finished', 'enqueued', 'error',
             'message', 'lease_ms', 'stalls', 'claims', 'stalled')
  redis.call('HSET', jk, 'attempts', 0, 'progress', 0, 'status', 'waiting')
  redis.call('HSET', KEYS[3], task, redo[task])
  if redo[task] == 0 then
    run_enqueue(ctx, run, task, it.jid, now, {it.queue, it.priority})
    queued = queued + 1
  else
    run_event(ctx, run, 'waiting', now, 'job', it.jid, 'task', task, 'queue', it.queue,
              'status', 'waiting')
    waiting = waiting + 1
  end
end
redis.call('HINCRBY', KEYS[1], 'failed', 0 - counts.failed)
redis.call('HINCRBY', KEYS[1], 'tolerated', 0 - counts.tolerated)
redis.call('HINCRBY', KEYS[1], 'skipped', 0 - counts.skipped)
redis.call('HINCRBY', KEYS[1], 'cancelled', 0 - counts.cancelled)
redis.call('HINCRBY', KEYS[1], 'waiting', waiting)
redis.call('HSET', KEYS[1], 'status', 'running')
redis.call('HDEL', KEYS[1], 'finished')
run_event(ctx, run, 'run_submitted', now, 'run_status', 'running',
          'message', 'retry: ' .. #order .. ' tasks')
return {#order, queued}
