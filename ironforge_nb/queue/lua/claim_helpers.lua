--[[ claim_helpers: claim_ready, the claim shared by claim_jobs and complete_job.

Not a script on its own: `scripting.assemble` puts this file before claim_jobs, complete_job and
start_jobs at load time (one copy of the claim; a Lua error names this file and its line).

  claim_ready(q, now, n) -> out
  mark_started(jk, token, now) -> 1 when the held lease `token` of the job whose meta hash is
      `jk` is now marked started (or already was), 0 when the job moved on (no longer active
      under that token)

Steps: (1) promote scheduled jobs that are due (at most q.limit_text) to the wait ZSET,
behind the jobs already queued at their priority, each with an 'enqueued' event; (2) pop the n
best jobs of the wait ZSET (highest priority, then FIFO); (3) for each: claims + 1, status
active, a fresh lease token (from the seq counter, so unique), deadline = now + lease, entry in
the active ZSET, a 'claimed' event. Entries whose hash says anything but 'queued' are dropped
(never claimed twice). The events of a job of a DAG run (a `run` field) also go to its run's
stream (run keys: q.run_prefix .. run .. ':events'), as every transition of a run's task does:
the claimed and enqueued events of one call are one entry per stream (task_event of
common.lua; q.tb and q.qb, when given, are the host's buffers of run and queue events, which
this claim adds to and writes).
A job of a run whose status is cancelled (a cancel walk is under way, walk_helpers.lua) is
neither promoted nor claimed: its entry is dropped, and the walk cancels it.

Safe resends: a claim sent with a request id (q.rid) leaves a receipt, "<rid>\n" then an
"<id> <token>\n" line per job claimed, at q.receipt (expiring with the lease). A call whose
rid is the receipt's is a resend of a claim that ran but whose reply was lost (a cut
connection; redis-py sends the same arguments again, or the client sends the id with its
next claim once its retries are spent: scripts.py): it claims nothing, and answers with the
jobs of the first call still active under their tokens, deadlines refreshed, the first
q.start of them marked started (claim_replay). So a lost reply never leaves jobs active with
nobody holding them.

Started and held leases: the first q.start jobs of the claim start now (field `started` =
now); the others are held, claimed ahead for an executor that is still busy (prefetch: no
`started` field), until mark_started() records that their executor took them up (a later
claim-and-complete or start_jobs.lua). An expired held lease costs the job nothing (see
lease_helpers.lua). `attempts` is not touched here: it counts the tries that ENDED by the
task's own outcome (error, timeout, success), so the try a lease carries is attempts + 1, and
a claim whose worker dies leaves it as it was.

Inputs:
  q.wait, q.scheduled, q.active, q.events, q.seq   the queue's keys (from the host's KEYS):
      wait ZSET id -> priority/FIFO score, scheduled ZSET id -> due time (ms), active ZSET
      id -> lease deadline (ms), events STREAM, seq STRING counter (FIFO order, lease tokens)
  q.prefix        the meta hash of job <id> is prefix .. id
  q.psuffix       the payload of job <id> is prefix .. id .. psuffix
  q.rsuffix       the result of job <id> is prefix .. id .. rsuffix
  q.run_prefix    the event stream of run <r> is run_prefix .. r .. ':events'
  q.queue         queue name (events)
  q.maxlen        approximate cap of the events stream
  q.worker        worker name, stored in the meta hash
  q.lease         lease length (ms, a number); q.lease_text the same as text (ARGV)
  q.limit_text    how many due scheduled jobs to promote at most (text, ARGV)
  q.start         how many of the claimed jobs start now, the first ones (a number)
  q.tb, q.qb      (optional) the host's buffers of run and queue events (task_event)
  q.rid           the request id of this call ('' = none), made once per logical call, so
                  that redis-py's resend of a call whose reply was lost repeats it
  q.receipt       STRING key of the worker's receipt for this queue (keys.py `receipt`)
  now             Redis TIME in ms; n  how many jobs to claim at most (a number)
Returns out = {wait_ms, then per claimed job: id, token, attempt, deadline_ms, payload, stable
  meta fields as a flat field/value list (queue, priority, max_attempts, backoff_ms, created
  (a run's job has none of its own: the run's, read with its status), run, task, user fields), inputs as a flat job id/result list}. wait_ms is, when nothing was
  claimed, the time until the earliest scheduled job is due (a worker blocks at most that
  long), else 0.

Inputs: a task of a DAG run whose meta hash has an `inputs` field (the positions in its run of
the parents whose results it reads, comma-separated; written by submit_run.lua for tasks that
read at most 32) gets those results in its claim reply (a parent served from the cache: the
result of the job its `source_job` names), each up to INLINE_BYTES and
INLINE_BUDGET for the whole reply, so that the executor starts it without a round trip of its
own. A parent with no result (failed under allow_failure), a bigger one or one past the budget
is left out: the executor reads what is missing itself.
]]

-- fields that change with each attempt, `inputs` and `cache_key` (the cross-run cache's, of
-- no use to the worker) stay out of the lease's meta
local CLAIM_VOLATILE = {status = 1, token = 1, worker = 1, started = 1, lease_ms = 1,
                        attempts = 1, progress = 1, message = 1, error = 1, failures = 1,
                        enqueued = 1, finished = 1, inputs = 1, stalls = 1, claims = 1,
                        stalled = 1, ended = 1, receipt = 1, cache_key = 1}
local INLINE_BYTES = 65536  -- a parent's result inlined in a claim reply at most
local INLINE_LAST = '65536'  -- GETRANGE's last index: INLINE_BYTES + 1 bytes tell "too big"
local INLINE_BUDGET = 1048576  -- all the results inlined in one claim reply at most

-- the results of a run's parent jobs at `inputs` (positions) that fit INLINE_BYTES and the
-- `budget` left; returns them as a flat id/result list, and the budget left after them
local function claim_inputs(q, run, inputs, budget)
  local found = {}
  for pos in string.gmatch(inputs, '[^,]+') do
    local pid = run .. '.' .. pos
    -- at most INLINE_BYTES + 1 bytes, one command: more means too big to inline
    local value = redis.call('GETRANGE', q.prefix .. pid .. q.rsuffix, '0', INLINE_LAST)
    if value == '' then  -- a cache hit holds no result: it reads its holder's (submit_run.lua)
      local src = redis.call('HGET', q.prefix .. pid, 'source_job')
      if src then
        value = redis.call('GETRANGE', q.prefix .. src .. q.rsuffix, '0', INLINE_LAST)
      end
    end
    local size = #value
    if size > 0 and size <= INLINE_BYTES and size <= budget then
      found[#found + 1] = pid
      found[#found + 1] = value
      budget = budget - size
    end
  end
  return found, budget
end

-- a held lease's executor took it up: from now on an expired lease is a stall (see above)
local function mark_started(jk, token, now)
  local st = redis.call('HMGET', jk, 'status', 'token', 'started')
  if st[1] ~= JobStatus.ACTIVE or st[2] ~= token then return 0 end
  if not st[3] then redis.call('HSET', jk, 'started', now) end
  return 1
end

-- the fields of a job's meta hash (its HGETALL reply `h`) that a claim reads; `meta` holds
-- the stable ones (everything but CLAIM_VOLATILE and the error history) as a flat list
local function claim_read(h)
  local j = {attempts = 0, claims = 0, meta = {}}
  local meta = j.meta
  for f = 1, #h, 2 do
    local name = h[f]
    if name == 'status' then j.status = h[f + 1]
    elseif name == 'token' then j.token = h[f + 1]
    elseif name == 'attempts' then j.attempts = tonumber(h[f + 1])
    elseif name == 'claims' then j.claims = tonumber(h[f + 1])
    elseif name == 'started' then j.begun = true
    elseif name == 'inputs' then j.inputs = h[f + 1]
    elseif not CLAIM_VOLATILE[name] and string.sub(name, 1, 6) ~= 'error.' then
      if name == 'run' then j.run = h[f + 1] elseif name == 'task' then j.task = h[f + 1] end
      meta[#meta + 1] = name; meta[#meta + 1] = h[f + 1]
    end
  end
  return j
end

-- the fields of run `run`'s meta hash a claim reads: {status, created} (one read per run and
-- claim, remembered in `seen`)
local function run_meta(q, run, seen)
  local m = seen[run]
  if m == nil then
    m = redis.call('HMGET', q.run_prefix .. run .. ':meta', 'status', 'created')
    seen[run] = m
  end
  return m
end

-- append the 7 reply items of a lease on job `id` to `out`; returns the inline budget left.
-- A run's job has no `created` of its own (submit_run.lua): its meta takes the run's
local function claim_entry(q, out, id, jk, j, tok, deadline, budget, seen)
  local o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4] = id, tok, j.attempts + 1, deadline
  out[o + 5] = redis.call('GET', jk .. q.psuffix) or ''
  local meta = j.meta
  if j.run then  -- (a run submitted by an older version has one: look, a few fields)
    local own = false
    for f = 1, #meta, 2 do
      if meta[f] == 'created' then own = true; break end
    end
    local created = not own and run_meta(q, j.run, seen)[2]
    if created then meta[#meta + 1] = 'created'; meta[#meta + 1] = created end
  end
  out[o + 6] = meta
  if j.inputs and j.run then
    out[o + 7], budget = claim_inputs(q, j.run, j.inputs, budget)
  else
    out[o + 7] = {}
  end
  return budget
end

-- a resend of this worker's last claim in this queue (same request id as its receipt): the
-- jobs of that claim still active under their tokens, deadlines refreshed; nil otherwise
local function claim_replay(q, now)
  if q.rid == '' then return nil end
  local receipt = redis.call('GET', q.receipt)
  if not receipt or string.sub(receipt, 1, #q.rid + 1) ~= q.rid .. '\n' then return nil end
  local out, budget, deadline, starting, seen = {0}, INLINE_BUDGET, now + q.lease, q.start, {}
  for id, tok in string.gmatch(string.sub(receipt, #q.rid + 2), '([^ \n]+) ([^ \n]+)\n') do
    local jk = q.prefix .. id
    local j = claim_read(redis.call('HGETALL', jk))
    if j.status == JobStatus.ACTIVE and j.token == tok then
      if starting > 0 then  -- as this call asks: its caller runs the first ones now
        starting = starting - 1
        mark_started(jk, tok, now)
      end
      redis.call('ZADD', q.active, string.format('%d', deadline), id)
      budget = claim_entry(q, out, id, jk, j, tok, deadline, budget, seen)
    end
  end
  return out
end

-- true when `run` is being cancelled: its jobs are left to the cancel walk
local function run_cancelled(q, run, seen)
  return run_meta(q, run, seen)[1] == RunStatus.CANCELLED
end

local function claim_ready(q, now, n)
  local again = claim_replay(q, now)
  if again then return again end
  local prefix, queue, maxlen, worker, lease = q.prefix, q.queue, q.maxlen, q.worker, q.lease
  -- numbers go to redis.call as text made here once: Redis writes a Lua number argument
  -- with '%.17g' (~2k instructions each)
  local ts, lease_text = string.format('%d', now), q.lease_text
  local out, seen = {0}, {}
  -- this call's events, one entry per stream (task_event of common.lua)
  local tb, qb = q.tb, q.qb
  local due = redis.call('ZRANGEBYSCORE', q.scheduled, '-inf', ts, 'LIMIT', '0', q.limit_text)
  for _, id in ipairs(due) do
    local jk = prefix .. id
    local f = redis.call('HMGET', jk, 'priority', 'run', 'task')
    if not (f[2] and run_cancelled(q, f[2], seen)) then
      local score = wait_score(f[1], redis.call('INCR', q.seq))
      redis.call('ZADD', q.wait, string.format('%d', score), id)
      redis.call('HSET', jk, 'status', JobStatus.QUEUED, JobField.ENQUEUED, ts)
      qb = task_event(qb, EventType.JOB_EVENTS, 'queue', q.events, maxlen, queue, ts, nil,
                      EventType.ENQUEUED, id, '', queue, JobStatus.QUEUED, '')
      if f[2] then
        tb = task_event(tb, EventType.TASK_EVENTS, 'run', run_events_key(q.run_prefix, f[2]),
                        maxlen, f[2], ts, nil, EventType.ENQUEUED, id, f[3] or '', queue,
                        JobStatus.QUEUED, '')
      end
    end
  end
  if #due > 0 then redis.call('ZREM', q.scheduled, unpack(due)) end

  local popped = redis.call('ZPOPMIN', q.wait, string.format('%d', n))
  q.popped = #popped / 2  -- fewer than n: the wait ZSET is empty now (complete_job.lua)
  local token, leased, budget, starting, lines = nil, {}, INLINE_BUDGET, q.start, {}
  for p = 1, #popped, 2 do
    local id = popped[p]
    local jk = prefix .. id
    local j = claim_read(redis.call('HGETALL', jk))
    if j.run and run_cancelled(q, j.run, seen) then j.status = nil end  -- left to the walk
    if j.status == JobStatus.QUEUED then  -- anything else is a stale entry: dropped, never claimed twice
      if not token then
        token = redis.call('INCRBY', q.seq, string.format('%d', #popped)) - #popped
      end
      token = token + 1
      local tok, deadline = string.format('%d', token), now + lease
      local attempt = string.format('%d', j.attempts + 1)
      local claims = string.format('%d', j.claims + 1)
      if starting > 0 then
        starting = starting - 1
        redis.call('HSET', jk, 'status', JobStatus.ACTIVE, 'token', tok, 'worker', worker,
                   'started', ts, 'lease_ms', lease_text, 'claims', claims)
      else  -- held: no `started` until its executor takes it up
        redis.call('HSET', jk, 'status', JobStatus.ACTIVE, 'token', tok, 'worker', worker,
                   'lease_ms', lease_text, 'claims', claims)
        if j.begun then redis.call('HDEL', jk, 'started') end
      end
      leased[#leased + 1] = string.format('%d', deadline)
      leased[#leased + 1] = id
      if #leased >= 2000 then  -- one ZADD per 1000 claims (Lua's unpack has limits)
        redis.call('ZADD', q.active, unpack(leased))
        leased = {}
      end
      qb = task_event(qb, EventType.JOB_EVENTS, 'queue', q.events, maxlen, queue, ts, worker,
                      EventType.CLAIMED, id, '', queue, JobStatus.ACTIVE, attempt)
      if j.run then
        tb = task_event(tb, EventType.TASK_EVENTS, 'run', run_events_key(q.run_prefix, j.run),
                        maxlen, j.run, ts, worker, EventType.CLAIMED, id, j.task or '', queue,
                        JobStatus.ACTIVE, attempt)
      end
      budget = claim_entry(q, out, id, jk, j, tok, deadline, budget, seen)
      lines[#lines + 1] = id .. ' ' .. tok .. '\n'
    end
  end
  if q.rid ~= '' and #lines > 0 then  -- the receipt a resend of this call is answered from
    redis.call('SET', q.receipt, q.rid .. '\n' .. table.concat(lines), 'PX', lease_text)
  end
  if #leased > 0 then redis.call('ZADD', q.active, unpack(leased)) end
  task_events_flush(qb)
  task_events_flush(tb)
  if #out == 1 then
    local first = redis.call('ZRANGE', q.scheduled, 0, 0, 'WITHSCORES')
    if #first > 0 then out[1] = math.max(1, tonumber(first[2]) - now) end
  end
  return out
end
