--[[ common: the idioms every transition shares, written once.

Not a script on its own: `scripting.assemble` puts this file after the generated prelude (the
constant tables JobStatus, RunStatus, EventType, ... of scripting.py) and before the helpers and the
script itself, in every script.

  now_ms()                       Redis server time, whole ms (a number)
  clock_ms()                     Redis server time, ms with the µs as a fraction (walk budgets)
  wait_score(priority, seq)      score of a queued job in its queue's wait ZSET
  wake_workers(key, n)           LPUSH n wake-up hints (at most WAKE_HINTS) for idle workers
  backoff_ms(base, attempt, jitter, cap)  delay before retry `attempt` + 1
  add_event(stream, maxlen, etype, now, ...)  XADD one event: type, ts, then `...` (no nils)
  add_run_event(run_prefix, run, maxlen, etype, now, ...)  the same on run <run>'s stream
  run_events_key(run_prefix, run)  the key of that stream
  task_event(b, kind, field, stream, maxlen, owner, now, worker, etype, job, task, queue,
             status, attempt) -> b   one claimed / enqueued / completed event of a job into the
                                 buffer b (nil: made here) of a run's or a queue's stream,
                                 written with the others of the same call as ONE entry
  task_events_flush(b)           XADD b's events (nothing if b is nil or empty)

`scripting.assemble` writes the one-line helpers (wait_score, add_event, add_run_event) out at
their call sites, `local x = now_ms()` as the TIME call and the sum, and a wake_workers(...)
statement as a do ... end block, on the same lines (queue/luatext.py): each `local function`
here costs a closure per script call, and each call a Lua call, on every script's hot path.
]]

-- Redis TIME: {seconds, microseconds}. Deadlines and timestamps all come from here, never from
-- a client's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

-- Wait score = -priority * 2^40 + seq: ZPOPMIN takes the highest priority first and, within one
-- priority, the lowest seq (FIFO). |priority| <= 1000 and seq < 2^40 keep scores exact doubles.
-- A job handed back goes to the FRONT of its priority level: seq 0 (wait_score(p, 0)).
local PRIORITY_STEP = 1099511627776  -- 2^40

local function wait_score(priority, seq)
  return -tonumber(priority or '0') * PRIORITY_STEP + seq
end

-- Idle workers block on their queue's wake LIST; one hint per job made ready (a hint only: a
-- woken worker claims whatever is there). The list is cut back to WAKE_HINTS hints when it
-- grows past them. WAKE_LAST (the last index kept) is a string: redis.call turns a Lua number
-- argument into a string on every call (about 0.2 µs each).
local WAKE_HINTS, WAKE_LAST = 64, '63'

local function wake_workers(key, n)
  local hints = {}
  for h = 1, math.min(n or 1, WAKE_HINTS) do hints[h] = '1' end
  if #hints > 0 and redis.call('LPUSH', key, unpack(hints)) > WAKE_HINTS then
    redis.call('LTRIM', key, '0', WAKE_LAST)
  end
end

-- Exponential backoff: base * 2^(attempt-1), plus up to 25% jitter (jitter in [0, 1), drawn by
-- the caller: scripts must stay deterministic), capped at `cap` ms.
local function backoff_ms(base, attempt, jitter, cap)
  local delay = tonumber(base) * 2 ^ (attempt - 1) * (1 + 0.25 * tonumber(jitter))
  return math.floor(math.min(delay, tonumber(cap)))
end

-- One event on a queue's or a run's stream (fields of ironforge_nb.status.Event), capped.
local function add_event(stream, maxlen, etype, now, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', etype, 'ts', now, ...)
end

-- One event on run <run>'s stream (keys.py: run_prefix .. run .. ':events'), naming the run.
local function add_run_event(run_prefix, run, maxlen, etype, now, ...)
  add_event(run_prefix .. run .. ':events', maxlen, etype, now, 'run', run, ...)
end

-- the key of run <run>'s stream
local function run_events_key(run_prefix, run)
  return run_prefix .. run .. ':events'
end

-- The claimed, enqueued and completed events that one call of the claim and completion
-- scripts writes go to each stream as ONE entry (per stream and call, at most TASK_EVENTS_MAX
-- events) instead of an XADD each (an XADD and its arguments cost about as much as the rest
-- of a job's claim): a run's stream gets entries of type `kind` 'task_events' with `field`
-- 'run' (fields ts, run, worker, events: a line per event "<type> <job> <task> <queue>
-- <status> <attempt>"), a queue's 'job_events' with 'queue' (fields ts, queue, worker, events:
-- "<type> <job> <status> <attempt>"); common.lua names no prelude constant, so the caller
-- passes both. attempt is '' for an 'enqueued' event, and the entry's worker is that of its
-- events with an attempt. Lines are in the order the events happened. A buffer holding ONE
-- event writes it as it always was (the fields in the order add_run_event / add_event give).
-- Readers expand an entry into the events an XADD each would have written (status.py
-- `Event.expanded`, the monitor's tracker), all with the entry's id. An event for another
-- stream, or of another worker, is written after flushing b, and so must be any other event
-- of the same stream (run_event does), so that a stream's order is that of the transitions.
-- A buffer is one table, made at the first event (with it in its array part) and reused
-- after a flush: what a call allocates costs Redis the Lua GC's work too.
local TASK_EVENTS_MAX = 100  -- events per entry at most (a reader's poll stays bounded)

local function task_events_flush(b)
  if not b or b.n == 0 then return end
  local n, w, run = b.n, b.worker, b.field == 'run'
  b.n = 0
  if n == 1 then  -- alone: the event as it is written on its own
    if run and b[6] ~= '' then
      redis.call('XADD', b.stream, 'MAXLEN', '~', b.maxlen, '*', 'type', b[1], 'ts', b.ts,
                 'run', b.owner, 'job', b[2], 'task', b[3], 'queue', b[4], 'status', b[5],
                 'attempt', b[6], 'worker', w)
    elseif run then
      redis.call('XADD', b.stream, 'MAXLEN', '~', b.maxlen, '*', 'type', b[1], 'ts', b.ts,
                 'run', b.owner, 'job', b[2], 'task', b[3], 'queue', b[4], 'status', b[5])
    elseif b[6] ~= '' then
      redis.call('XADD', b.stream, 'MAXLEN', '~', b.maxlen, '*', 'type', b[1], 'ts', b.ts,
                 'job', b[2], 'queue', b[4], 'status', b[5], 'attempt', b[6], 'worker', w)
    else
      redis.call('XADD', b.stream, 'MAXLEN', '~', b.maxlen, '*', 'type', b[1], 'ts', b.ts,
                 'job', b[2], 'queue', b[4], 'status', b[5])
    end
    return
  end
  local lines = {}
  for i = 1, n do
    local k = i * 6 - 6
    if run then
      lines[i] = b[k + 1] .. ' ' .. b[k + 2] .. ' ' .. b[k + 3] .. ' ' .. b[k + 4] .. ' ' ..
                 b[k + 5] .. ' ' .. b[k + 6]
    else
      lines[i] = b[k + 1] .. ' ' .. b[k + 2] .. ' ' .. b[k + 5] .. ' ' .. b[k + 6]
    end
  end
  if w then
    redis.call('XADD', b.stream, 'MAXLEN', '~', b.maxlen, '*', 'type', b.kind, 'ts', b.ts,
               b.field, b.owner, 'worker', w, 'events', table.concat(lines, '\n'))
  else
    redis.call('XADD', b.stream, 'MAXLEN', '~', b.maxlen, '*', 'type', b.kind, 'ts', b.ts,
               b.field, b.owner, 'events', table.concat(lines, '\n'))
  end
end

local function task_event(b, kind, field, stream, maxlen, owner, now, worker, etype, job, task,
                          queue, status, attempt)
  if not b then
    return {etype, job, task, queue, status, attempt, n = 1, kind = kind, field = field,
            stream = stream, owner = owner, ts = now, worker = worker or false, maxlen = maxlen}
  end
  local n = b.n
  if n > 0 and (n >= TASK_EVENTS_MAX or b.stream ~= stream or b.ts ~= now
                or (worker and b.worker and b.worker ~= worker)) then
    task_events_flush(b)
    n = 0
  end
  if n == 0 then
    b.kind, b.field, b.stream, b.owner, b.ts, b.worker, b.maxlen = kind, field, stream, owner,
                                                                   now, worker or false, maxlen
  elseif worker and not b.worker then
    b.worker = worker
  end
  b.n = n + 1
  local k = n * 6
  b[k + 1], b[k + 2], b[k + 3], b[k + 4], b[k + 5], b[k + 6] = etype, job, task, queue, status,
                                                                attempt
  return b
end
