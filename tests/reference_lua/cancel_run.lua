--[[ cancel_run: cancel every task of a run that has not ended, and end the run as cancelled.

Steps: (1) a run that is not running is left alone ({0, status}); (2) each task whose job is
waiting, queued, scheduled or active leaves its queue's wait/scheduled/active ZSET, becomes
cancelled (with `finished`), enters its queue's cancelled ZSET, with a 'cancelled' event in the
queue's and the run's stream. An active job keeps its lease token, so its worker's next
heartbeat/progress/complete/fail is refused with BAD_STATE 'cancelled': the signal to stop;
(3) the run's counters, status cancelled, `finished`, a 'run_finished' event.
The run helpers (run_helpers.lua) are prepended at load time.

KEYS[1] meta    HASH of the run
KEYS[2] tasks   HASH task id -> job id
ARGV[1] job_prefix     meta hash of job <id> = job_prefix .. id
ARGV[2] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
ARGV[3] queue_prefix   queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[4] events_maxlen  approximate cap of each event stream
ARGV[5] run_id         the run's id
Returns: {1, tasks cancelled}, {0, run status} when the run had already ended, or {-1, ''}
  when there is no such run.
]]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1, ''} end
if status ~= 'running' then return {0, status} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ctx, run = run_ctx(ARGV[1], ARGV[2], ARGV[3], ARGV[4]), ARGV[5]
local live = {waiting = true, queued = true, scheduled = true, active = true}
local all = redis.call('HGETALL', KEYS[2])
local cancelled, waiting = 0, 0
for i = 1, #all, 2 do
  local task, jid = all[i], all[i + 1]
  local jk = ctx.job_prefix .. jid
  local st = redis.call('HMGET', jk, 'status', 'queue')
  if live[st[1]] then
    local q = st[2]
    redis.call('ZREM', queue_key(ctx, q, 'wait'), jid)
    redis.call('ZREM', queue_key(ctx, q, 'scheduled'), jid)
    redis.call('ZREM', queue_key(ctx, q, 'active'), jid)
    redis.call('ZADD', queue_key(ctx, q, 'cancelled'), now, jid)
    redis.call('HSET', jk, 'status', 'cancelled', 'finished', now)
    redis.call('XADD', queue_key(ctx, q, 'events'), 'MAXLEN', '~', ctx.maxlen, '*',
               'type', 'cancelled', 'ts', now, 'job', jid, 'queue', q, 'status', 'cancelled')
    run_event(ctx, run, 'cancelled', now, 'job', jid, 'task', task, 'queue', q,
              'status', 'cancelled')
    cancelled = cancelled + 1
    if st[1] == 'waiting' then waiting = waiting + 1 end
  end
end
redis.call('HINCRBY', KEYS[1], 'cancelled', cancelled)
redis.call('HINCRBY', KEYS[1], 'waiting', 0 - waiting)  -- never '-0': not an integer
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished', now)
run_event(ctx, run, 'run_finished', now, 'run_status', 'cancelled')
return {1, cancelled}
