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
