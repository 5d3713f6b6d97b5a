--[[ submit_run: create a whole DAG run atomically and idempotently (one script, one call; or,
for a big run, staged chunks and a commit: "Staged submit" below).

Steps: (1) validate every argument (counts, numbers, profile indexes, record layout, payload
sizes) before the first write, so a malformed call returns an error and writes nothing; (2) if
the run's meta hash exists, return 'exists' and change nothing (submitting the same run id
twice makes one run), and if a run with this id is being deleted, 'deleting'; (3) store each
distinct function once (SET NX on its content-addressed code key), count the run among its
users (code_refs) and list the code keys under the run (delete_runs.lua releases them); (4) per task: its job's meta
HASH (queue, run, task, status; max_attempts, priority, backoff_ms, timeout and
allow_failure only when they matter) and payload STRING. Fields equal to their default are
left out, as enqueue_jobs.lua leaves out `attempts`, because every field costs Redis time
(about 1 us each, a third of the script for 10k tasks): `attempts` (0 until the first claim),
`priority` when 0, `max_attempts` when 1 (a task without retries) and `backoff_ms` then (no
retry ever reads it); every reader defaults them (0, and 1 for max_attempts: fail_job.lua,
`JobInfo`, `TaskState`). Nor does a job get `created`, nor a root `enqueued`: both are the
run's `created` (this script's `now`), which every reader takes when the field is absent
(queue/submitted.py `submit_times`, claim_helpers.lua, outbox_helpers.lua); a root's
`enqueued` is written when it is queued again (a retry, a stall, a backoff). Roots are queued
(status queued, one ZADD per queue and 1000 roots, an 'enqueued' event in their queue's
stream, as any enqueued job gets, except the events that stream's cap would drop within this
same script: of more than events_maxlen roots in one queue, only the last events_maxlen get
theirs, since XADD MAXLEN ~ keeps at least the newest events_maxlen and no reader can run
between two commands of a script), the other tasks are 'waiting' (in no ZSET); (5) the
run's tasks HASH (task -> job id), remaining HASH (task -> parents not completed), children
HASH (task -> comma-separated child tasks), its meta HASH (name, status running, total and
counters, created, params, maps, mode), its id in the runs ZSET, the queues in the queues SET,
wake-up hints, and ONE event in the run's stream: 'run_submitted' (message "<name>: <N> tasks,
<R> queued"); no per-task event there: which tasks start queued (the roots) and waiting (the
others) follows from the DAG, and later transitions each append their own event.
Cost: per task one HSET, and a share of one MSET per 1000 payloads (a SET per payload cost
twice the server time), plus an XADD per root up to events_maxlen per queue and a few table
appends; the arguments are a few big strings rather than two per task, so neither the client
nor Lua handles 20k arguments for a 10k-task run.
The run helpers (run_helpers.lua) are prepended at load time; only run_ctx, run_key, queue_key,
run_event and run_settle are used here (and hook_routes / hook_cached of outbox_helpers.lua).

KEYS[1] meta       HASH of the run
KEYS[2] tasks      HASH task id -> job id
KEYS[3] remaining  HASH task id -> parents not completed yet
KEYS[4] children   HASH task id -> child task ids, comma-separated
KEYS[5] events     STREAM of the run's transitions
KEYS[6] runs       ZSET run id -> creation time (ms)
KEYS[7] queues     SET of the namespace's queue names
KEYS[8] deleting   HASH of the runs being deleted (delete_runs.lua)
KEYS[9] code_refs  HASH code key -> number of runs using it
KEYS[10] codes     STRING the run's code keys, comma-separated
KEYS[11] cache_index  ZSET cache key -> expiry time (ms) of its entry
KEYS[12] staging   ZSET run id -> time after which its staged submit may be swept (below)
KEYS[12+i] code    STRING code key of function i (i = 1..n_codes)
ARGV[1] job_prefix      meta hash of job <id> = job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix (see run_helpers)
ARGV[4] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[5] events_maxlen   approximate cap of each event stream
ARGV[6] run_id          the run's id
ARGV[7] name            pipeline name
ARGV[8] params          encoded run params ('' = none)
ARGV[9] maps            encoded map table ('' = none)
ARGV[10] mode           'json' or 'pickle'
ARGV[11] n_profiles     P: distinct option profiles
ARGV[12] n_codes        C: functions shipped by value
ARGV[13] n_tasks        N
then P profiles of 7: queue, priority, max_attempts, backoff_ms, timeout ('' = none),
     allow_failure ('0'/'1'), max_stalls ('' = the engine's default)
then C code blobs (signed pickles), in KEYS order
then the records, as six columns (strings) of N values each, in record order: the task ids,
     one per line ("<task id>\n"); then in runs of equal values, a line "<count> <value>\n"
     per run (single spaces; names never contain spaces, newlines or commas; or a first line
     "*\n" and then the values one per line, for a column with few equal neighbours), the profiles
     (1-based), the parents counts, the payload sizes (bytes), the inputs (the positions of
     the parents whose results the task reads, comma-separated, or empty: stored as the job's
     `inputs` field, from which claims bring those results along, see claim_helpers.lua) and
     the children (comma-separated). A 100k-task WIDE run's five run columns are 12 runs in
     all: a value per task cost a Lua capture (~600 instructions) each. Task i (0-based, in
     record order) gets job id run_id .. '.' .. i
then the payloads: one string, the N payloads concatenated in record order
then cache: '' (no task of the run is cached) or N lines in record order, each "<key> <ttl_ms>\n"
     for a cached task (ttl_ms '0': the entry lives as long as result_ttl_ms, refreshed by each
     hit) or "- 0\n" for a task that is not
then cache_entries  HASH cache key -> its entry "<job> <origin> <created> <expires> <task>
                    <pipeline>" (times in ms; the entry is dead from <expires> on, or with
                    <expires> 0 (the default lifetime) once the job's result is gone; the
                    index's expiry scores let a bounded prune HDEL the dead ones)
then result_suffix  result key = job_prefix .. id .. result_suffix
then result_ttl_ms  lifetime of results (ms)
Cache (orchestrator/cache.py): a cached task whose entry is not expired and names a job whose
result key still exists (only a completion, or a deleted run handing a result over, writes a
run job's result) is a hit. The PEXPIRE that finds the result also keeps it result_ttl_ms from
now: a hit POINTS at that job's result (the holder) instead of copying it. Its job is created
'completed' with only what cannot be read elsewhere: run, task, finished, `source_job` = the
holder, whose result readers read when the job has none of its own (queue/borrowing.py,
claim_helpers.lua), and the profile's fields; no `progress` (readers take 1 for a completed
job), no `created` (as no job of the run: readers take the run's), no `source_run` when the origin is the holder's
own run (readers take the run of `source_job`; a holder handed its result by delete_runs.lua
has another origin: then it is written), no result key of its own. It joins the holder's
borrowers: a line "<holder> <hit>" in the borrowers log of the holder's run (run key
'borrowers', one APPEND per holder run and submit), which delete_runs.lua files under each
holder (JobKey.BORROWERS) before deleting that run's jobs; while that run is being deleted
(KEYS[8]), under the holder at once (one APPEND per hit). It is not queued; its children
count it as a completed parent (a child whose parents all hit, or are roots, is queued at
once). In the
run's stream, ONE 'cache_hits' event per 1000 hits (field `hits`: a line "<job> <task>
<queue> <origin run>" per hit), which readers expand into one 'completed' event with `cached`
per task (status.py `Event.expanded`, the monitor's tracker). The entry is not written by a
hit: it keeps naming the holder, whose result each hit keeps alive (an entry with the default
lifetime, <expires> 0, lives as long as that result). Deleting the holder's run hands the
result to its first borrower (delete_runs.lua: the result key renamed, the entry re-pointed
by the holder's `cache_key`, the other borrowers pointed at the heir, a big result's file
pinned), so a run's results stay readable as long as the run exists (and result_ttl after its
submit), whichever run computed them. Costs per hit: the PEXPIRE, the job's HSET, a share of
the log's APPEND and of the event (a 'completed' event and an APPEND to the holder's borrowers
per hit, and `created`, `progress`, `source_run` and `cache_key` in every hit's HSET, cost twice
as much; a copy of the result took a GETRANGE, a COPY, a PEXPIRE and the entry's HSET and
ZADD; benchmarks/bench_iterate.py --callgrind).
A miss writes the entry for the new job (valid once it completes), and the job records the
key (`cache_key`). Every hit counts in the
run's `completed` and `cached` counters, and sends job.completed to the webhook endpoints that
want it, with `cached` true and `source_run` in its data (outbox_helpers.lua; in task order,
before the run's own event); a run whose every task hits ends 'succeeded' at once.
A hit's job gets no payload: a completed job is never claimed or run again.
Entries are fields of one HASH, read with one HMGET and written with one HSET per 1000 keys
(a STRING per entry took a GET and a SET ... PX per key: twice the server time; see
benchmarks/bench_cache_ops.py). Expired entries leave the hash and the index here, up to
max(1000, N) of them per submit (ZRANGEBYSCORE up to now); one with the default lifetime whose
result still lives is scored again at that result's expiry instead.
then phase   'all' (the whole run in this call, as described above), or one of the phases of
            a staged submit: 'stage', 'commit', 'abort' (below)
then token   the staged submit's token ('' for 'all')
then offset  the position of the chunk's first task in the run ('stage'; else 0)
then ttl_ms  how long a staged run waits for its next call before it may be swept ('stage')
Staged submit (orchestrator/submit.py, big runs without cached tasks): the client encodes the
run a chunk at a time and sends each chunk ('stage') while it encodes the next, so that its
encoding and this script's work overlap; a last call ('commit') makes the run exist. Nothing
staged can be seen or claimed: a stage writes the jobs' hashes and payloads and the run's tasks,
remaining and children hashes, none of which any reader reaches without the run's meta or a
queue entry; the roots' queue entries wait in the run's 'roots:<queue>' ZSET (scored from the
queue's seq as any root; the commit RENAMEs it to the queue's wait ZSET when that is empty, else
adds its members there) and its 'staged' HASH holds the token, the chunks done ('c<offset>': a
resent chunk changes nothing) and the queues with staged roots ('q:<queue>', for delete_runs).
The run is in the runs:staging ZSET (KEYS[12]) scored by the time after which it may be swept,
ttl_ms after its last chunk: delete_runs.lua deletes a run left there that has no meta, as it
deletes a run (a client that died between two chunks leaves nothing visible, and nothing at all
after the next purge: a submit's, a delete's, or a worker's housekeeping step). A 'stage' call
carries N = the chunk's tasks, the chunk's columns (inputs and children name tasks by position
and id in the whole run) and payloads, no codes and no cache lines. 'commit' carries N = the
run's tasks, the profiles and codes, empty columns and payloads: it checks that N tasks were
staged, stores the codes, queues the roots (the 'enqueued' events of the last events_maxlen of
each queue), writes the run's meta, its 'run_submitted' event and its place in the runs ZSET,
wakes the workers and deletes the staging keys. 'abort' marks the run for deletion if the token
is still its stager's. Replies: 'staged' (a chunk written, or one written before), 'created'
(commit), 'exists' (the run was created by now: by this submit's commit whose reply was lost, or
by another client's), 'deleting', 'busy' (another token is staging this run id), 'lost' (no
staging under this token: swept, or never begun: 'stage' at offset 0 begins it), 'aborted' /
'gone' (abort).
Returns: 'created', 'exists', or 'deleting' (a run with this id is being deleted: nothing
  written; the caller finishes that deletion and submits again); an error reply (nothing
  written) for malformed arguments.
]]
local P, C, N = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
if not (P and C and N) or #ARGV ~= 28 + 7 * P + C or #KEYS ~= 12 + C then
  return redis.error_reply('ERR submit_run: malformed arguments (counts do not add up)')
end
local phase, token = ARGV[25 + 7 * P + C], ARGV[26 + 7 * P + C]
local offset, stage_ttl = tonumber(ARGV[27 + 7 * P + C]), tonumber(ARGV[28 + 7 * P + C])
local staging = phase == 'stage'
if not (offset and stage_ttl and offset >= 0 and offset % 1 == 0 and (staging or offset == 0))
   or not (phase == 'all' or staging or phase == 'commit' or phase == 'abort')
   or (phase ~= 'all' and token == '') or (staging and C > 0)
   or (staging and ARGV[21 + 7 * P + C] ~= '') then
  return redis.error_reply('ERR submit_run: malformed staging arguments (phase ' .. phase .. ')')
end
local staged_key = ARGV[3] .. ARGV[6] .. ':staged'  -- the 'staged' HASH (run key, see above)
-- the staging state under this token: nil when it is this token's, else the reply
local function staging_refused()
  if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
  if redis.call('HEXISTS', KEYS[8], ARGV[6]) == 1 then return 'deleting' end
  local holder = redis.call('HGET', staged_key, 'token')
  if not holder then return 'lost' end
  if holder ~= token then return 'busy' end
end
if phase == 'abort' then
  if redis.call('HGET', staged_key, 'token') ~= token or redis.call('EXISTS', KEYS[1]) == 1 then
    return 'gone'
  end
  redis.call('ZREM', KEYS[12], ARGV[6])
  redis.call('HSETNX', KEYS[8], ARGV[6], '0')
  return 'aborted'
end
local profiles, by_text = {}, {}  -- by index, and by the index as records write it
for p = 1, P do
  local b = 13 + 7 * (p - 1)
  local prof = {queue = ARGV[b + 1], priority = ARGV[b + 2], attempts = ARGV[b + 3],
                backoff = ARGV[b + 4], timeout = ARGV[b + 5], allow = ARGV[b + 6],
                stalls = ARGV[b + 7]}
  if prof.queue == '' or not (tonumber(prof.priority) and tonumber(prof.attempts)
                              and tonumber(prof.backoff)) then
    return redis.error_reply('ERR submit_run: malformed profile ' .. p)
  end
  prof.score = wait_score(prof.priority, 0)  -- + the job's seq
  -- the fields every job of this profile has, appended to each job's HSET by unpack()
  local f = {'queue', prof.queue}
  if tonumber(prof.priority) ~= 0 then f[#f + 1] = 'priority'; f[#f + 1] = prof.priority end
  if tonumber(prof.attempts) ~= 1 then
    f[#f + 1] = 'max_attempts'; f[#f + 1] = prof.attempts
    f[#f + 1] = 'backoff_ms'; f[#f + 1] = prof.backoff
  end
  if prof.timeout ~= '' then f[#f + 1] = 'timeout'; f[#f + 1] = prof.timeout end
  if prof.allow == '1' then f[#f + 1] = 'allow_failure'; f[#f + 1] = '1' end
  if prof.stalls ~= '' then f[#f + 1] = 'max_stalls'; f[#f + 1] = prof.stalls end
  prof.fields = f
  profiles[p], by_text[tostring(p)] = prof, prof
end

-- (3) the functions shipped by value, once each (phases 'all' and 'commit')
local function store_codes()
  local code_keys = {}
  for c = 1, C do
    code_keys[c] = KEYS[12 + c]
    redis.call('SET', code_keys[c], ARGV[13 + 7 * P + c], 'NX')
    redis.call('HINCRBY', KEYS[9], code_keys[c], 1)
  end
  if C > 0 then redis.call('SET', KEYS[10], table.concat(code_keys, ',')) end
end

-- (5) the run exists: its meta, its place in the runs ZSET, its queues, the workers woken for
-- its roots (roots_in: queue -> roots queued) and its 'run_submitted' event
local function publish(ctx, now, roots_in, roots_total, hits)
  local run = ARGV[6]
  redis.call('HSET', KEYS[1], 'name', ARGV[7], 'status', RunStatus.RUNNING, 'total', N,
             JobStatus.WAITING, N - roots_total - hits, JobStatus.COMPLETED, hits,
             JobStatus.FAILED, 0, 'tolerated', 0, JobStatus.SKIPPED, 0, JobStatus.CANCELLED, 0,
             'created', now, 'params', ARGV[8], 'maps', ARGV[9], 'mode', ARGV[10],
             'cached', hits)
  redis.call('ZADD', KEYS[6], now, run)
  for _, prof in ipairs(profiles) do redis.call('SADD', KEYS[7], prof.queue) end
  for q, count in pairs(roots_in) do
    wake_workers(queue_key(ctx, q, QueueKey.WAKE), count)
  end
  run_event(ctx, run, EventType.RUN_SUBMITTED, now, 'run_status', RunStatus.RUNNING, 'message',
            ARGV[7] .. ': ' .. N .. ' tasks, ' .. roots_total .. ' queued' ..
            (hits > 0 and (', ' .. hits .. ' cached') or ''))
end

if phase == 'commit' then  -- a staged submit's last call (see the header)
  local refused = staging_refused()
  if refused then return refused end
  local staged = redis.call('HLEN', KEYS[2])  -- the run's tasks HASH: a field per task
  if staged ~= N then
    return redis.error_reply('ERR submit_run: commit of ' .. N .. ' tasks, ' .. staged ..
                             ' staged')
  end
  local now = tostring(now_ms())
  local maxlen, run = ARGV[5], ARGV[6]
  local ctx = run_ctx(ARGV[1], ARGV[3], ARGV[4], maxlen)
  store_codes()
  local roots_in, roots_total, cap = {}, 0, tonumber(maxlen)
  for _, prof in ipairs(profiles) do
    local q = prof.queue
    local rkey, wait = run_key(ctx, run, 'roots:' .. q), queue_key(ctx, q, QueueKey.WAIT)
    local count = not roots_in[q] and redis.call('ZCARD', rkey) or 0
    if count > 0 then
      -- the 'enqueued' events of the last `cap` roots (by score: in task order, priority
      -- apart), which the queue's capped stream keeps
      local seen = redis.call('ZRANGE', rkey, -cap, -1)
      -- the roots join the wait ZSET: as a whole when it is empty (O(1)), else 1000 at a
      -- time (a ZUNIONSTORE rebuilds the whole ZSET: 3x slower with as many jobs there)
      if redis.call('EXISTS', wait) == 0 then
        redis.call('RENAME', rkey, wait)
      else
        for s = 0, count - 1, 1000 do
          local page = redis.call('ZRANGE', rkey, s, s + 999, 'WITHSCORES')
          for k = 1, #page, 2 do page[k], page[k + 1] = page[k + 1], page[k] end
          redis.call('ZADD', wait, unpack(page))
        end
        redis.call('DEL', rkey)
      end
      local events = queue_key(ctx, q, QueueKey.EVENTS)
      for _, jid in ipairs(seen) do
        add_event(events, maxlen, EventType.ENQUEUED, now, 'job', jid, 'queue', q,
                  'status', JobStatus.QUEUED)
      end
      roots_in[q], roots_total = count, roots_total + count
    end
  end
  redis.call('DEL', staged_key)
  redis.call('ZREM', KEYS[12], run)
  publish(ctx, now, roots_in, roots_total, 0)
  return 'created'
end

-- (1) parse and check every column into flat arrays (no table per task): the task ids one per
-- line, the other columns in runs of equal values, expanded here (a 100k-task WIDE run's
-- five columns are 12 runs: a capture per task and column cost ~600 instructions)
local c_task, c_prof, c_np = ARGV[14 + 7 * P + C], ARGV[15 + 7 * P + C], ARGV[16 + 7 * P + C]
local c_len, c_in, c_kids = ARGV[17 + 7 * P + C], ARGV[18 + 7 * P + C], ARGV[19 + 7 * P + C]
local blob = ARGV[20 + 7 * P + C]
local r_task, r_prof, r_np, r_len, r_in, r_kids = {}, {}, {}, {}, {}, {}
local n, at = 0, 1
for s, task, e in string.gmatch(c_task, '()([^ \n]+)\n()') do
  if s ~= at then break end
  n = n + 1
  r_task[n], at = task, e
end
if n ~= N or at ~= #c_task + 1 then
  return redis.error_reply('ERR submit_run: malformed task ids (' .. n .. ' of ' .. N .. ')')
end
-- numbers, each distinct text converted once (tonumber is strtod, ~1.3k instructions)
local number = {}
local function num(text)
  local v = number[text]
  if not v then v = tonumber(text); number[text] = v end
  return v
end
-- a column's value from its text, checked (nil: malformed): a profile, a parents count (kept as
-- text, '0' for a root, as compared and as stored in `remaining`; not '012'), a payload size
-- (a number), inputs (digits and commas) or anything (children)
local function value_of(kind, text)
  if kind == 'profile' then return by_text[text] end
  if kind == 'parents' then
    if text == '0' or string.find(text, '^[1-9]%d*$') then return text end
  elseif kind == 'size' then
    if string.find(text, '^%d+$') then return num(text) end
  elseif kind == 'inputs' then
    if string.find(text, '^[%d,]*$') then return text end
  else
    return text
  end
end
-- expand the runs "<count> <value>\n" of `column` into out[1..N] (or, after a first line
-- "*", its values one per line: a column with few equal neighbours), each value checked by
-- value_of(kind, text); true when they cover the N tasks
local function expand(column, out, kind)
  local k, from = 0, 1
  if string.sub(column, 1, 2) == '*\n' then
    column = string.sub(column, 3)
    for s, text, e in string.gmatch(column, '()([^ \n]*)\n()') do
      local v = text  -- children: any text, no call
      if kind ~= 'children' then v = value_of(kind, text) end
      if s ~= from or v == nil or k == N then return false end
      k = k + 1
      out[k], from = v, e
    end
    return k == N and from == #column + 1
  end
  for s, count, text, e in string.gmatch(column, '()(%d+) ([^ \n]*)\n()') do
    local c, v = num(count), value_of(kind, text)
    if s ~= from or v == nil or c < 1 or k + c > N then return false end
    for j = k + 1, k + c do out[j] = v end
    k, from = k + c, e
  end
  return k == N and from == #column + 1
end
if not expand(c_prof, r_prof, 'profile') then
  return redis.error_reply('ERR submit_run: malformed profiles column')
end
if not expand(c_np, r_np, 'parents') then
  return redis.error_reply('ERR submit_run: malformed parents column')
end
if not expand(c_len, r_len, 'size') then
  return redis.error_reply('ERR submit_run: malformed sizes column')
end
if not expand(c_in, r_in, 'inputs') or not expand(c_kids, r_kids, 'children') then
  return redis.error_reply('ERR submit_run: malformed inputs or children column')
end
local bytes = 0
for i = 1, N do bytes = bytes + r_len[i] end
if bytes ~= #blob then
  return redis.error_reply('ERR submit_run: malformed payloads (sizes ' .. bytes .. ' for ' ..
                           #blob .. ' bytes)')
end

local cache_lines = ARGV[21 + 7 * P + C]
local centries, rsuffix = ARGV[22 + 7 * P + C], ARGV[23 + 7 * P + C]
local rttl = tonumber(ARGV[24 + 7 * P + C])
local c_key, c_ttl, n_lines = {}, {}, 0
local c_pos, c_list, n_cached = {}, {}, 0  -- the cached tasks' positions and keys, in order
for key, ttl in string.gmatch(cache_lines, '([^ \n]+) (%d+)\n') do
  n_lines = n_lines + 1
  if key ~= '-' then
    c_key[n_lines], c_ttl[n_lines] = key, tonumber(ttl)
    n_cached = n_cached + 1
    c_pos[n_cached], c_list[n_cached] = n_lines, key
  end
end
if (cache_lines ~= '' and n_lines ~= N) or not rttl then
  return redis.error_reply('ERR submit_run: malformed cache lines (' .. n_lines .. ' for ' ..
                           N .. ' tasks)')
end

if staging then
  local refused = staging_refused()
  if refused == 'lost' and offset == 0 then  -- the first chunk begins the staging
    redis.call('HSET', staged_key, 'token', token)
    refused = nil
  end
  if refused then return refused end
  if redis.call('HEXISTS', staged_key, 'c' .. offset) == 1 then return 'staged' end  -- a resend
else
  if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
  if redis.call('HEXISTS', KEYS[8], ARGV[6]) == 1 then return 'deleting' end
end

local now = tostring(now_ms())
local prefix, psuffix, maxlen, run = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local ctx = run_ctx(prefix, ARGV[3], ARGV[4], maxlen)

-- integers become text by string.format's %d: a number concatenated in Lua is formatted by
-- %.14g (and one passed to redis.call by %.17g), the slowest step of building a job id
local fmt = string.format
-- (2b) the cache lookup, one HMGET per 1000 keys: hit[i] = the holder job, origin[i] = the run
-- that computed its result
local hit, origin, hits, now_ms = {}, {}, 0, tonumber(now)
local rttl_text = ARGV[24 + 7 * P + C]  -- as text: a number argument is formatted per call
for s = 1, n_cached, 1000 do
  local last = math.min(n_cached, s + 999)
  local found = redis.call('HMGET', centries, unpack(c_list, s, last))
  for j = 1, last - s + 1 do
    local e = found[j]
    local src, from, expires
    if e then src, from, expires = string.match(e, '^(%S+) (%S*) %d+ (%d+) ') end
    -- only a completion (or a hand-over) writes a run job's result: it exists => completed;
    -- PEXPIRE tells that (0: no such key) and keeps it alive for the run that points at it
    if src and (expires == '0' or tonumber(expires) > now_ms)
       and redis.call('PEXPIRE', prefix .. src .. rsuffix, rttl_text) == 1 then
      local i = c_pos[s + j - 1]
      hit[i], origin[i] = src, from
      hits = hits + 1
    end
  end
end
if hits > 0 then  -- a hit is a completed parent: its children wait for one parent less
  local idx, less = {}, {}
  for i = 1, N do idx[r_task[i]] = i end
  for i in pairs(hit) do
    for child in string.gmatch(r_kids[i], '[^,]+') do
      local j = idx[child]
      less[j] = (less[j] or 0) + 1
    end
  end
  for j, k in pairs(less) do r_np[j] = fmt('%d', tonumber(r_np[j]) - k) end
end

store_codes()

-- one seq block per queue for its roots (gaps are harmless)
local roots_in, roots_total = {}, 0
for i = 1, N do
  if r_np[i] == '0' and not hit[i] then
    local q = r_prof[i].queue
    roots_in[q] = (roots_in[q] or 0) + 1
    roots_total = roots_total + 1
  end
end
local seqs, ranked, unseen, cap = {}, {}, {}, tonumber(maxlen)
for q, count in pairs(roots_in) do
  seqs[q] = redis.call('INCRBY', queue_key(ctx, q, QueueKey.SEQ), count) - count
  ranked[q] = {n = 0}
  -- the queue's stream keeps its last `cap` events (XADD MAXLEN ~ cap, in this very script):
  -- of more roots than that, the first ones' 'enqueued' events could never be read, so they
  -- are not written (a 100k-root submit: 10,000 XADDs instead of 100,000); a staged chunk
  -- writes none (its commit does)
  unseen[q] = staging and count or count - cap
end
-- a queue's roots so far (`list`: score, job id, ... up to n): into its wait ZSET, or, staged,
-- into the run's 'roots:<queue>' ZSET, which the commit moves there
local function queue_roots(q, list, n)
  if staging then
    redis.call('ZADD', run_key(ctx, run, 'roots:' .. q), unpack(list, 1, n))
  else
    redis.call('ZADD', queue_key(ctx, q, QueueKey.WAIT), unpack(list, 1, n))
  end
end

-- HSET of up to 1000 pairs at a time (unpack() has a stack limit)
local function flush(key, flat, size)
  if size > 0 then redis.call('HSET', key, unpack(flat, 1, size)) end
end
local tasks, remaining, children, index, entries, payloads = {}, {}, {}, {}, {}, {}
local nt, nr, nc, ni, ne, np, pos = 0, 0, 0, 0, 0, 0, 1
-- the hits' lines for the run's 'cache_hits' events, in pieces (table.concat joins them), and
-- for each holder's run the lines "<holder> <hit>\n" of its borrowers log (in pieces too)
local lines, nl, lent = {}, 0, {}
local lasting = fmt('%d', now_ms + rttl)  -- the expiry of an entry with the default lifetime
-- numbers that go up by one (job ids, a queue's FIFO scores) as text: from 1000 on, the text
-- of their thousands (made again every 1000) and a 3-digit tail made once per value of 0-999,
-- as a string.format per number cost ~1.5k instructions
local tails = {}
local function tail3(k)
  local t = tails[k]
  if not t then t = fmt('%03d', k); tails[k] = t end
  return t
end
-- the job ids: "<run>.<offset + i - 1>" (a staged chunk's tasks start at `offset`)
local thousands, lo = nil, 999
if offset >= 1000 then
  lo = offset % 1000 - 1
  thousands = fmt('%s.%d', run, (offset - offset % 1000) / 1000)
end
for i = 1, N do
  local task, prof, len = r_task[i], r_prof[i], r_len[i]
  local jid
  local g = offset + i - 1
  if g < 1000 then
    jid = fmt('%s.%d', run, g)
  else
    lo = lo + 1
    if lo == 1000 then lo = 0; thousands = fmt('%s.%d', run, g / 1000) end
    jid = thousands .. tail3(lo)
  end
  local jk = prefix .. jid
  if hit[i] then  -- no result of its own: it reads its holder's, as one of its borrowers
    local src, from = hit[i], origin[i]
    -- `source_run` is left out when it is the run of `source_job` (the holder computed the
    -- result; readers derive it), written when the holder was handed it (delete_runs.lua)
    local owner = from  -- the holder's run
    if string.sub(src, 1, #from + 1) == from .. '.' then
      redis.call('HSET', jk, 'status', JobStatus.COMPLETED, 'run', run, 'task', task,
                 'finished', now, 'source_job', src, unpack(prof.fields))
    else
      owner = string.match(src, '^(.*)%.%d+$') or from
      redis.call('HSET', jk, 'status', JobStatus.COMPLETED, 'run', run, 'task', task,
                 'finished', now, 'source_job', src, 'source_run', from, unpack(prof.fields))
    end
    local log = lent[owner]
    if not log then log = {n = 0}; lent[owner] = log end
    local k = log.n
    log[k + 1], log[k + 2], log[k + 3], log[k + 4], log.n = src, ' ', jid, '\n', k + 4
    lines[nl + 1], lines[nl + 2], lines[nl + 3], lines[nl + 4] = jid, ' ', task, ' '
    lines[nl + 5], lines[nl + 6], lines[nl + 7], lines[nl + 8] = prof.queue, ' ', from, '\n'
    nl = nl + 8
  elseif r_np[i] == '0' then
    if c_key[i] then  -- a miss records its key: a hand-over re-points its entry (delete_runs)
      redis.call('HSET', jk, 'status', JobStatus.QUEUED, 'run', run, 'task', task,
                 'cache_key', c_key[i], unpack(prof.fields))
    else
      redis.call('HSET', jk, 'status', JobStatus.QUEUED, 'run', run, 'task', task,
                 unpack(prof.fields))
    end
    local q = prof.queue
    local list, seq = ranked[q], seqs[q] + 1
    seqs[q] = seq
    local n = list.n + 2
    local score = prof.score + seq
    if score >= 1000 then  -- priority 0: the score is the seq, thousands then a 3-digit tail
      local low = score % 1000
      local high = (score - low) / 1000
      if high ~= list.high then list.high, list.head = high, fmt('%d', high) end
      list[n - 1] = list.head .. tail3(low)
    else
      list[n - 1] = fmt('%d', score)
    end
    list[n], list.n = jid, n
    if n >= 2000 then
      queue_roots(q, list, n)
      list.n = 0
    end
    local skip = unseen[q]
    if skip > 0 then
      unseen[q] = skip - 1
    else
      add_event(queue_key(ctx, q, QueueKey.EVENTS), maxlen, EventType.ENQUEUED, now,
                'job', jid, 'queue', q, 'status', JobStatus.QUEUED)
    end
  else
    local key = c_key[i]
    if r_in[i] ~= '' and key then
      redis.call('HSET', jk, 'status', JobStatus.WAITING, 'run', run, 'task', task,
                 'inputs', r_in[i], 'cache_key', key, unpack(prof.fields))
    elseif r_in[i] ~= '' then
      redis.call('HSET', jk, 'status', JobStatus.WAITING, 'run', run, 'task', task,
                 'inputs', r_in[i], unpack(prof.fields))
    elseif key then
      redis.call('HSET', jk, 'status', JobStatus.WAITING, 'run', run, 'task', task,
                 'cache_key', key, unpack(prof.fields))
    else
      redis.call('HSET', jk, 'status', JobStatus.WAITING, 'run', run, 'task', task,
                 unpack(prof.fields))
    end
    remaining[nr + 1], remaining[nr + 2] = task, r_np[i]
    nr = nr + 2
    if nr >= 2000 then flush(KEYS[3], remaining, nr); nr = 0 end
  end
  local key = c_key[i]
  if key and not hit[i] then  -- a miss: the entry names this job (valid once it completes)
    -- "<job> <origin> <created> <expires> <task> <pipeline>"; <expires> 0 (the default
    -- lifetime): as long as the result lives, which each hit extends; the index scores it
    -- with the result's first expiry (the prune looks again then)
    local ttl = c_ttl[i]
    local expires = ttl == 0 and lasting or fmt('%d', now_ms + ttl)
    entries[ne + 1], entries[ne + 2] = key, jid .. ' ' .. run .. ' ' .. now .. ' ' ..
                                            (ttl == 0 and '0' or expires) .. ' ' .. task ..
                                            ' ' .. ARGV[7]
    ne = ne + 2
    if ne >= 2000 then flush(centries, entries, ne); ne = 0 end
    index[ni + 1], index[ni + 2] = expires, key
    ni = ni + 2
    if ni >= 2000 then redis.call('ZADD', KEYS[11], unpack(index, 1, ni)); ni = 0 end
  end
  if not hit[i] then  -- a hit's job is completed: it is never claimed, so needs no payload
    payloads[np + 1], payloads[np + 2] = jk .. psuffix, string.sub(blob, pos, pos + len - 1)
    np = np + 2
    if np >= 2000 then redis.call('MSET', unpack(payloads, 1, np)); np = 0 end
  end
  pos = pos + len
  tasks[nt + 1], tasks[nt + 2] = task, jid
  nt = nt + 2
  if nt >= 2000 then flush(KEYS[2], tasks, nt); nt = 0 end
  if r_kids[i] ~= '' then
    children[nc + 1], children[nc + 2] = task, r_kids[i]
    nc = nc + 2
    if nc >= 2000 then flush(KEYS[4], children, nc); nc = 0 end
  end
end
if np > 0 then redis.call('MSET', unpack(payloads, 1, np)) end
flush(KEYS[2], tasks, nt)
flush(KEYS[3], remaining, nr)
flush(KEYS[4], children, nc)
for q, list in pairs(ranked) do
  if list.n > 0 then queue_roots(q, list, list.n) end
end
if ni > 0 then redis.call('ZADD', KEYS[11], unpack(index, 1, ni)) end
flush(centries, entries, ne)
-- the borrowers: one APPEND per holder's run to its log (delete_runs.lua files the lines under
-- each holder, JobKey.BORROWERS, before it deletes a job); under each holder at once while
-- that run is being deleted (its log may have been filed already)
for owner, log in pairs(lent) do
  if redis.call('HEXISTS', KEYS[8], owner) == 1 then
    for k = 1, log.n, 4 do
      redis.call('APPEND', prefix .. log[k] .. JobKey.BORROWERS, log[k + 2] .. ',')
    end
  else
    redis.call('APPEND', run_key(ctx, owner, 'borrowers'), table.concat(log, '', 1, log.n))
  end
end
if n_cached > 0 then  -- prune expired entries, at most max(1000, N) per submit
  local due = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', now, 'LIMIT', 0, math.max(1000, N))
  for s = 1, #due, 1000 do
    local last = math.min(#due, s + 999)
    local found = redis.call('HMGET', centries, unpack(due, s, last))
    local dead, nd, later, nl = {}, 0, {}, 0
    for j = 1, last - s + 1 do
      -- an entry with the default lifetime lives while its job's result does (hits extend it)
      local job = found[j] and string.match(found[j], '^(%S+) %S* %d+ 0 ')
      local left = job and redis.call('PTTL', prefix .. job .. rsuffix) or -2
      if left == -1 then left = rttl end  -- a result with no expiry: look again rttl on
      if left > 0 then
        later[nl + 1], later[nl + 2] = now_ms + left, due[s + j - 1]
        nl = nl + 2
      else
        nd = nd + 1
        dead[nd] = due[s + j - 1]
      end
    end
    if nd > 0 then
      redis.call('HDEL', centries, unpack(dead, 1, nd))
      redis.call('ZREM', KEYS[11], unpack(dead, 1, nd))
    end
    if nl > 0 then redis.call('ZADD', KEYS[11], unpack(later, 1, nl)) end
  end
end

if staging then  -- the chunk is in: recorded (a resend finds it), the sweep put off
  redis.call('HSET', staged_key, 'c' .. offset, '1')
  for q in pairs(roots_in) do redis.call('HSET', staged_key, 'q:' .. q, '1') end
  redis.call('ZADD', KEYS[12], now_ms + stage_ttl, run)
  return 'staged'
end
publish(ctx, now, roots_in, roots_total, hits)
-- after 'run_submitted', as every task event of the run: one 'cache_hits' event per 1000 hits
for s = 1, nl, 8000 do  -- a line is 8 pieces, its last one '\n' (left out of the event)
  run_event(ctx, run, EventType.CACHE_HITS, now, 'hits',
            table.concat(lines, '', s, math.min(nl, s + 7999) - 1))
end
if hits > 0 and #hook_routes(ctx.hooks) > 0 then
  for i = 1, N do  -- job.completed for the webhook endpoints (outbox_helpers.lua), flagged cached
    if hit[i] then
      hook_cached(ctx.hooks, fmt('%s.%d', run, i - 1), now, run, r_task[i], r_prof[i].queue,
                  ARGV[7], origin[i])
    end
  end
end
if hits == N then run_settle(ctx, run, now) end
return 'created'
