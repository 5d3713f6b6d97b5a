--[[ outbox_helpers: the webhook outbox, written by the transition that an event reports.

Not a script on its own: `scripting.assemble` puts this file (before run_helpers.lua) before every
script that uses run_helpers.lua, whose run_ctx() makes the context and whose entry points call
these. A job's completion or dead-lettering and a run's end add their event here, in the same
script as the transition, so no crash between the two can lose a notification
(ironforge_nb.webhooks delivers them). Entry points:

  hook_ctx(prefix, run_prefix)   webhook keys = prefix .. 'routes' | 'outbox' | 'seq' |
                                 'delivery:' .. id (keys.py `Keys.webhook_prefix`)
  hook_job(h, etype, jk, id, now, status)   job.completed / job.failed of job hash jk
  hook_cached(h, id, now, run, task, queue, pipeline, origin)   job.completed of a cache hit
                                 (submit_run.lua): `cached` true, `source_run` = origin (the
                                 run that computed the result), attempts 0
  hook_run(h, run, err)          run.<status> of a run that has just ended (its meta hash
                                 has its final status and `finished`); for run.failed, err
                                 (the failure of this script) or else the meta's `failure`
                                 (the last task failure not tolerated, kept by run_on_failed
                                 and cleared by a retry)

Cost with no endpoint registered: one HGETALL of an empty key per script call (the routes are
read once per call, whatever the number of events), nothing else. Each endpoint whose filter
matches (event type, and optionally pipeline and queue) gets a delivery: a HASH (endpoint,
event number, type, created ms, data JSON, status 'pending', attempts 0) and an outbox entry
due now. The event number (INCR of 'seq') is shared by the deliveries of one event: it is the
``webhook-id`` receivers deduplicate on. Payload data is thin: ids, names, status, attempts,
times (ms) and, for failures, the error's last line (at most 300 characters).
]]
local function hook_ctx(prefix, run_prefix)
  return {prefix = prefix or '', run_prefix = run_prefix}
end

-- the enabled endpoints' filters, read once per script call: {{id, filter}, ...}
local function hook_routes(h)
  if h.routes == nil then
    h.routes = {}
    if h.prefix ~= '' then
      local flat = redis.call('HGETALL', h.prefix .. 'routes')
      for i = 1, #flat, 2 do h.routes[#h.routes + 1] = {flat[i], cjson.decode(flat[i + 1])} end
    end
  end
  return h.routes
end

local function hook_matches(f, etype, pipeline, queue)
  if f.pipeline and f.pipeline ~= cjson.null and f.pipeline ~= pipeline then return false end
  if f.queue and f.queue ~= cjson.null and f.queue ~= queue then return false end
  for _, t in ipairs(f.events) do
    if t == etype then return true end
  end
  return false
end

-- the last non-empty line of an error text, capped (a traceback's "ValueError: ..." line)
local function hook_summary(err)
  if not err or err == '' then return nil end
  local last = err
  for line in string.gmatch(err, '[^\n]+') do
    if string.find(line, '%S') then last = line end
  end
  return string.sub(last, 1, 300)
end

local function hook_emit(h, etype, now, pipeline, queue, data)
  local body, eid
  for _, r in ipairs(h.routes) do
    if hook_matches(r[2], etype, pipeline, queue) then
      if not body then
        body = cjson.encode(data)
        eid = redis.call('INCR', h.prefix .. 'seq')
      end
      local did = eid .. '-' .. r[1]
      redis.call('HSET', h.prefix .. 'delivery:' .. did, 'endpoint', r[1], 'event', eid,
                 'type', etype, 'created', now, 'data', body, 'status', DeliveryStatus.PENDING,
                 'attempts', 0, 'next', now)
      redis.call('ZADD', h.prefix .. 'outbox', now, did)
    end
  end
end

local function hook_job(h, etype, jk, id, now, status)
  if #hook_routes(h) == 0 then return end
  local j = redis.call('HMGET', jk, 'queue', 'run', 'task', 'attempts', 'created', 'error',
                       'worker')
  local pipeline, created = nil, j[5]
  if j[2] then  -- a run's job has no `created` of its own (submit_run.lua): the run's
    local m = redis.call('HMGET', h.run_prefix .. j[2] .. ':meta', 'name', 'created')
    pipeline, created = m[1], created or m[2]
  end
  local data = {
    job_id = id, queue = j[1], status = status, attempts = tonumber(j[4] or '0'),
    created = tonumber(created or '0'), finished = tonumber(now), run_id = j[2] or nil,
    task = j[3] or nil, pipeline = pipeline or nil, worker = j[7] or nil,
    error = status == JobStatus.FAILED and hook_summary(j[6]) or nil}
  hook_emit(h, etype, now, pipeline or nil, j[1], data)
end

-- job.completed of a cache hit (submit_run.lua): completed at submit with the result of run
-- `origin`; the script knows every field, so nothing is read back
local function hook_cached(h, id, now, run, task, queue, pipeline, origin)
  if #hook_routes(h) == 0 then return end
  hook_emit(h, WebhookEvent.JOB_COMPLETED, now, pipeline, queue, {
    job_id = id, queue = queue, status = JobStatus.COMPLETED, attempts = 0, created = tonumber(now),
    finished = tonumber(now), run_id = run, task = task, pipeline = pipeline, cached = true,
    source_run = origin ~= '' and origin or nil})
end

local function hook_run(h, run, err)
  if #hook_routes(h) == 0 then return end
  local m = redis.call('HMGET', h.run_prefix .. run .. ':meta', 'name', 'created', 'total',
                       JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.SKIPPED,
                       JobStatus.CANCELLED, 'status', 'finished',
                       'failure')
  local status, now = m[8], tonumber(m[9])
  if status ~= RunStatus.FAILED then
    err = nil
  elseif not err or err == '' then
    err = m[10]  -- the failure was in an earlier script (run_on_failed keeps it in the meta)
  end
  hook_emit(h, 'run.' .. status, now, m[1], nil, {
    run_id = run, pipeline = m[1], status = status, created = tonumber(m[2] or '0'),
    finished = now, tasks = {total = tonumber(m[3] or '0'), completed = tonumber(m[4] or '0'),
                             failed = tonumber(m[5] or '0'), skipped = tonumber(m[6] or '0'),
                             cancelled = tonumber(m[7] or '0')},
    error = hook_summary(err)})
end
