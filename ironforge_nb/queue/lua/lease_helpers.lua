--[[ lease_helpers: how a lease ends when the task itself neither failed nor succeeded.

Not a script on its own: `scripting.assemble` puts this file (after run_helpers.lua) before
reap_expired, release_dead, stall_job, release_job and fail_job at load time (one copy of the
logic; a Lua error names this file and its line).

A lease ends in one of three ways that are not the task's own outcome:

  lease_release(q, jk, id, now, st)   FREE: the job goes back to the front of its priority
      level in the wait ZSET, queued at once, nothing charged (neither `attempts` nor
      `stalls`), a 'released' event. For a worker that hands back a job (stopping, revoked
      prefetch) and for a HELD lease (claimed ahead, never started: no `started` field) that
      expired because its worker died.
  lease_stall(q, jk, id, now, reason, st) -> status   a STALL: the task was running when its
      worker (lease expired) or its executor process (killed by a signal, e.g. the OOM killer)
      died. stalls + 1, `stalled` = "<reason> (worker <w>)"; up to max_stalls times the job is
      queued again at once (front of its priority level, no backoff, no attempt charged), a
      'stalled' event; past max_stalls it fails for good with the error "stalled N times
      (max_stalls M); last: <reason> (worker <w>)": dead ZSET, 'stalled' then 'failed' events,
      its run settled as fail_job.lua does (run_on_failed of run_helpers.lua).
  lease_expired(q, jk, id, now, st, reason) -> EventType.RELEASED | status   the reaper's choice
      between the two (reason: why the lease ended, for a stall): held leases are released for free, started ones stall. Safety cap: a job whose
      claims ended uncharged FREE_CLAIMS times already (claims - 1 - attempts - stalls: every
      claim ends in an attempt, a stall, a free release or the job's end) is charged a stall
      even when held: a safety net for a caller of the Queue API that runs held leases
      without marking them (the shipped worker's executors mark each lease before its code
      runs, see worker/slots.py), whose job could otherwise kill its worker for free forever.

  lease_fence(jk, token, verb) -> refused, answer   the fence of a worker's `verb` call
      ('fail', 'release', 'stall') on its lease `token` of job `jk`: both nil when the token
      holds the active job; answer = what the first call answered when this is a resend of
      a call that took effect (the job's `ended` field, "<token> <verb> <answer>", written by
      that call); else refused = the error reply {code, detail} (-1 JOB_NOT_FOUND, -2
      LEASE_LOST: another token holds the job, -3 BAD_STATE: not active).

The caller has removed the job from the active ZSET and read `st` (`lease_state`). q: wait, dead, events, wake (keys of the job's queue), queue (its name),
maxlen (events cap), max_stalls (the default, for jobs without a `max_stalls` field), ctx (a
run_ctx of run_helpers.lua, for the events and bookkeeping of tasks of DAG runs).
]]
local LEASE_FIELDS = {'status', 'started', 'attempts', 'stalls', 'claims', 'max_stalls',
                      'worker', 'priority', 'run', 'task'}
local FREE_CLAIMS = 10  -- uncharged ends of claims after which an expired held lease stalls

-- the job's fields as a table, from an HMGET of LEASE_FIELDS
local function lease_state(jk)
  local v = redis.call('HMGET', jk, unpack(LEASE_FIELDS))
  return {status = v[1], started = v[2], attempts = tonumber(v[3] or '0'),
          stalls = tonumber(v[4] or '0'), claims = tonumber(v[5] or '0'), max_stalls = v[6],
          worker = v[7] or '', priority = v[8] or '0', run = v[9], task = v[10] or ''}
end

local function lease_fence(jk, token, verb)
  local cur = redis.call('HMGET', jk, 'status', 'token', 'ended')
  if cur[1] == JobStatus.ACTIVE and cur[2] == token then return nil, nil end
  local mine = token .. ' ' .. verb .. ' '
  if cur[3] and string.sub(cur[3], 1, #mine) == mine then
    return nil, string.sub(cur[3], #mine + 1)
  end
  if not cur[1] then return {ErrorCode.JOB_NOT_FOUND, ''}, nil end
  if cur[2] ~= token then return {ErrorCode.LEASE_LOST, cur[1]}, nil end
  return {ErrorCode.BAD_STATE, cur[1]}, nil
end

-- queued again at the front of its priority level (below every FIFO seq), workers woken
local function lease_requeue(q, jk, id, now, st)
  redis.call('ZADD', q.wait, wait_score(st.priority, 0), id)
  redis.call('HDEL', jk, 'token', 'started')
  redis.call('HSET', jk, 'status', JobStatus.QUEUED, JobField.ENQUEUED, now)
  wake_workers(q.wake, 1)
end

local function lease_release(q, jk, id, now, st)
  lease_requeue(q, jk, id, now, st)
  add_event(q.events, q.maxlen, EventType.RELEASED, now,
            'job', id, 'queue', q.queue, 'status', JobStatus.QUEUED, 'worker', st.worker)
  if st.run then
    run_event(q.ctx, st.run, EventType.RELEASED, now, 'job', id, 'task', st.task, 'queue', q.queue,
              'status', JobStatus.QUEUED, 'worker', st.worker)
  end
end

local function lease_stall(q, jk, id, now, reason, st)
  local stalls = redis.call('HINCRBY', jk, 'stalls', 1)
  local cap = tonumber(st.max_stalls or q.max_stalls)
  local text = reason .. ' (worker ' .. st.worker .. ')'
  local attempt = string.format('%d', st.attempts + 1)
  local status = JobStatus.QUEUED
  if stalls > cap then
    status = JobStatus.FAILED
    local err = 'stalled ' .. stalls .. (stalls == 1 and ' time' or ' times') ..
                ' (max_stalls ' .. cap .. '); last: ' .. text
    local n = redis.call('HINCRBY', jk, 'failures', 1)
    redis.call('HDEL', jk, 'token')
    redis.call('HSET', jk, 'status', JobStatus.FAILED, 'finished', now, JobField.STALLED, text, 'error', err,
               'error.' .. n, attempt .. string.format('|%d|', now) .. err)
    redis.call('ZADD', q.dead, now, id)
  else
    lease_requeue(q, jk, id, now, st)
    redis.call('HSET', jk, JobField.STALLED, text)
  end
  add_event(q.events, q.maxlen, EventType.STALLED, now,
            'job', id, 'queue', q.queue, 'status', status, 'attempt', attempt,
            'worker', st.worker, 'error', text, 'stalls', stalls)
  if st.run then
    run_event(q.ctx, st.run, EventType.STALLED, now, 'job', id, 'task', st.task, 'queue', q.queue,
              'status', status, 'attempt', attempt, 'worker', st.worker, 'error', text,
              'stalls', stalls)
  end
  if status == JobStatus.FAILED then
    local err = redis.call('HGET', jk, 'error')
    add_event(q.events, q.maxlen, EventType.FAILED, now,
              'job', id, 'queue', q.queue, 'status', JobStatus.FAILED, 'attempt', attempt,
              'error', err, 'worker', st.worker)
    run_on_failed(q.ctx, jk, id, now, err)
  end
  return status
end

local function lease_expired(q, jk, id, now, st, reason)
  if not st.started and st.claims - 1 - st.attempts - st.stalls < FREE_CLAIMS then
    lease_release(q, jk, id, now, st)
    return EventType.RELEASED
  end
  return lease_stall(q, jk, id, now, reason, st)
end
