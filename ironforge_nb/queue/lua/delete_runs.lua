--[[ delete_runs: delete whole runs in bounded steps (an explicit run, and the finished runs
beyond the namespace's retention).

A run owns its jobs: queue retention never deletes them (run_helpers.lua `trim_ended`), so runs
are deleted whole, here. Deleting a 100k-task run touches 300k keys: too much for one script
(Redis is blocked while a script runs), so the work is split: a run is first *marked* (cheap,
atomic), then its jobs are deleted `budget` at a time by later calls, resuming where the last
call stopped. A marked run is invisible at once: its meta HASH is gone (a `Run` handle reports
no such run, retry/cancel refuse) and it has left the runs ZSET (`ifn.runs()`).

Steps: (1) if run_id ~= '': the run must exist ({-1, ''}), have ended ({-2, status}) and
have no walk or skips pending ({-3, status}); in these cases nothing changed
(`Run.delete(force=True)` cancels a running run first, and the caller finishes pending work
with walk_run.lua); then it is marked: removed from the runs and runs:ended ZSETs, its meta
HASH deleted, recorded in the deleting HASH with cursor '0'; (1b) a staged submit whose client
went quiet past its deadline (runs:staging, submit_run.lua) is recorded there too (it has no
meta nor runs entry), at most 1000 per call; (2) when runs:ended (the ended
runs, by creation time: run_helpers.lua adds a run when it settles) holds more than
`retention` runs, the oldest beyond `retention` are marked the same way (at most 1000 per
call; running runs are never deleted here); this reads only the runs it marks, however many
runs the namespace keeps; (3) up to `budget` units of work on marked runs: first the run's
borrowers log (a STRING of "<holder job> <hit job>\n" lines, submit_run.lua: the cache hits of
later runs that read its jobs' results) is filed under each holder (an APPEND to its
JobKey.BORROWERS list per line, a unit each, from the byte the deleting HASH stores as
'L<byte>'), then its jobs are deleted (a unit each): HSCAN of the run's tasks HASH
from the cursor stored in the deleting HASH; each job leaves the ZSET of its queue that holds
it (completed, dead or cancelled, by its status) and its meta HASH, payload, result and logs
keys are deleted; when the scan is complete, the run's tasks, remaining, children, events, codes,
borrowers (and meta) keys are deleted and the run leaves the deleting HASH. Code blobs are
content-addressed and shared by runs: each one the run used loses a user in code_refs, and the
blob is deleted with its last user.

KEYS[1] runs      ZSET run id -> creation time (ms)
KEYS[2] deleting  HASH run id -> HSCAN cursor of its tasks HASH ('0' = not started)
KEYS[3] code_refs HASH code key -> number of runs using it (submit_run.lua)
KEYS[4] result_pins HASH result file URL -> jobs of other runs holding a reference to it
KEYS[5] ended     ZSET run id -> creation time (ms) of the runs that have ended
KEYS[6] cache_entries HASH cache key -> "<job> <origin> <created> <expires> <task> <pipeline>"
KEYS[7] staging   ZSET run id -> time after which its staged submit may be swept
                  (submit_run.lua, 'stage')
ARGV[1] job_prefix      meta hash of job <id> = job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] result_suffix   result key = job_prefix .. id .. result_suffix
ARGV[4] run_prefix      run keys = run_prefix .. run id .. ':' .. suffix (see run_helpers)
ARGV[5] queue_prefix    queue keys = queue_prefix .. queue .. ':' .. suffix
ARGV[6] retention       ended runs kept (step 2); '0' skips step 2
ARGV[7] budget          jobs deleted and borrowers lines filed by this call (step 3),
                        approximately: HSCAN's COUNT is a
                        hint, and a small tasks HASH (listpack: <= 512 fields by default)
                        comes in one page;
                        '0' skips step 3
ARGV[8] run_id          run to mark (step 1); '' = none
ARGV[9] logs_suffix     logs key = job_prefix .. id .. logs_suffix
Cache hits (submit_run.lua) read their holder's result instead of a copy: a deleted job whose
borrowers list (JobKey.BORROWERS) names jobs that still point at it (`source_job`) hands its
result over to the first of them, the heir: the result key is RENAMEd to the heir's (its TTL
kept), the heir's `source_job` goes (it holds its own result now) and it gets the job's
`cache_key` and the origin as `source_run` (a hit leaves it out while it is the run of its
`source_job`: the job's own `source_run` if it was handed the result, else its run), the other
borrowers point at the heir (with `source_run` written too) and become its borrowers, the
cache entry that named the job (its `cache_key`: submit_run.lua writes it on the job of a
miss) names the heir, and a big result's file is pinned for the heir. So
deleting the run that computed a result breaks neither the runs that reused it nor the
cache: the result lives on in the heir, and nothing is left under the deleted run's job ids
(a new run of the same id never sees it). A deleted hit leaves its holder's borrowers list.
Result files (orchestrator/store.py): a deleted job with a `pinned` field (a hit handed a
reference to another run's file, or an older cache hit that copied one) releases its pin; a pin
count reaching 0 is removed and the
file's URL returned in `released` (the caller deletes it when its own run is gone too). A run
whose deletion completes returns its result store root (the run's `store` key, deleted here)
in `finished`, so the caller removes the run's files except pinned ones.
Returns: {runs still being deleted, jobs deleted by this call, released (list of URLs),
  finished (flat list run id, store root)}, or {-1, ''} (no run run_id), {-2, status}
  (run_id has not ended) or {-3, status} (work on run_id is pending): nothing changed.
]]
local prefix, psuffix, rsuffix = ARGV[1], ARGV[2], ARGV[3]
local run_prefix, queue_prefix = ARGV[4], ARGV[5]
local retention, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local ended = {succeeded = true, failed = true, cancelled = true}

local REF_MAGIC = '\0IFR1'  -- a result held in the result store (orchestrator/store.py)

-- job `id` of run `run` (meta hash `jk`) is being deleted and `list` names its borrowers: hand
-- its result to the first one still pointing at it (see above)
local function hand_over(id, run, jk, list)
  local heirs = {}
  for b in string.gmatch(list, '[^,]+') do
    if b ~= id and redis.call('HGET', prefix .. b, 'source_job') == id then
      heirs[#heirs + 1] = b
    end
  end
  local rk = jk .. rsuffix
  if #heirs == 0 or redis.call('EXISTS', rk) == 0 then return end  -- expired: theirs too
  local hk = prefix .. heirs[1]
  -- the origin: the job's own `source_run` (it was handed the result) or its run
  local own = redis.call('HMGET', jk, 'source_run', 'cache_key')
  local origin, key = own[1] or run, own[2]
  redis.call('RENAME', rk, hk .. rsuffix)
  redis.call('HDEL', hk, 'source_job')
  if key then
    redis.call('HSET', hk, 'source_run', origin, 'cache_key', key)
  else
    redis.call('HSET', hk, 'source_run', origin)
  end
  if redis.call('GETRANGE', hk .. rsuffix, 0, 4) == REF_MAGIC then  -- its file outlives its run
    local url = cjson.decode(string.sub(redis.call('GET', hk .. rsuffix), 6)).url
    redis.call('HINCRBY', KEYS[4], url, 1)
    redis.call('HSET', hk, 'pinned', url)
  end
  for k = 2, #heirs do
    redis.call('HSET', prefix .. heirs[k], 'source_job', heirs[1], 'source_run', origin)
  end
  if #heirs > 1 then
    redis.call('SET', hk .. JobKey.BORROWERS, table.concat(heirs, ',', 2) .. ',')
  end
  local entry = key and redis.call('HGET', KEYS[6], key)
  if entry and string.sub(entry, 1, #id + 1) == id .. ' ' then
    redis.call('HSET', KEYS[6], key, heirs[1] .. string.sub(entry, #id + 1))
  end
end

-- hit `id` is being deleted: it leaves the borrowers list of `src`, the job it reads
local function leave(src, id)
  local bk = prefix .. src .. JobKey.BORROWERS
  local list = redis.call('GET', bk)
  if not list then return end
  local a, b = string.find(',' .. list, ',' .. id .. ',', 1, true)
  if not a then return end
  local rest = string.sub(list, 1, a - 1) .. string.sub(list, b)
  if rest == '' then redis.call('DEL', bk) else redis.call('SET', bk, rest) end
end

-- the borrowers log of a run being deleted (lines "<holder> <hit>\n", submit_run.lua): up to
-- `left` lines from byte `from` on are filed under their holders (JobKey.BORROWERS), where
-- hand_over finds them; returns the lines filed and the byte to go on from, or nil once the
-- log is done (and deleted)
local LOG_CHUNK = 65536  -- bytes read at a time (a line is well under 100)
local function file_borrowers(lk, from, left)
  local filed = 0
  while filed < left do
    local chunk = redis.call('GETRANGE', lk, from, from + LOG_CHUNK - 1)
    local stop = 0
    for holder, hit, e in string.gmatch(chunk, '(%S+) (%S+)\n()') do
      redis.call('APPEND', prefix .. holder .. JobKey.BORROWERS, hit .. ',')
      filed, stop = filed + 1, e - 1
      if filed >= left then break end
    end
    if stop == 0 then  -- the end of the log
      redis.call('DEL', lk)
      return filed, nil
    end
    from = from + stop
  end
  return filed, from
end

local function mark(run)
  redis.call('ZREM', KEYS[1], run)
  redis.call('ZREM', KEYS[5], run)
  redis.call('DEL', run_prefix .. run .. ':meta')
  redis.call('HSETNX', KEYS[2], run, '0')
end

if ARGV[8] ~= '' then
  local run = ARGV[8]
  local status = redis.call('HGET', run_prefix .. run .. ':meta', 'status')
  if not status then
    if redis.call('HEXISTS', KEYS[2], run) == 0 then return {ErrorCode.NOT_FOUND, ''} end
  elseif not ended[status] then
    return {ErrorCode.NOT_ENDED, status}
  elseif redis.call('EXISTS', run_prefix .. run .. ':walk', run_prefix .. run .. ':skips') > 0 then
    return {ErrorCode.RUN_BUSY, status}
  else
    mark(run)
  end
end

-- (1b) staged submits whose client went quiet past their deadline (it died between two chunks,
-- submit_run.lua): nothing of them is visible; their jobs and staging keys are deleted as a
-- run's (at most 1000 runs marked per call)
local now = now_ms()
local quiet = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 1000)
for _, run in ipairs(quiet) do
  redis.call('ZREM', KEYS[7], run)
  if redis.call('EXISTS', run_prefix .. run .. ':meta') == 0 then
    redis.call('HSETNX', KEYS[2], run, '0')
  end
end

if retention > 0 then
  local excess = redis.call('ZCARD', KEYS[5]) - retention
  if excess > 0 then
    for _, run in ipairs(redis.call('ZRANGE', KEYS[5], 0, math.min(excess, 1000) - 1)) do
      mark(run)
    end
  end
end

-- the ZSET of its queue that holds a job in each ended status
local parked = {[JobStatus.COMPLETED] = QueueKey.COMPLETED, [JobStatus.FAILED] = QueueKey.DEAD,
                [JobStatus.CANCELLED] = QueueKey.CANCELLED}
local deleted, spent, released, finished = 0, 0, {}, {}  -- spent: jobs deleted + lines filed
local pending = redis.call('HGETALL', KEYS[2])
for i = 1, #pending, 2 do
  if spent >= budget then break end
  local run, cursor = pending[i], pending[i + 1]
  local rk = run_prefix .. run .. ':'
  if cursor == '0' or string.sub(cursor, 1, 1) == 'L' then  -- its borrowers log first
    local from = cursor == '0' and 0 or tonumber(string.sub(cursor, 2))
    local filed
    filed, from = file_borrowers(rk .. 'borrowers', from, budget - spent)
    spent = spent + filed
    cursor = from and ('L' .. from) or '0'
  end
  if string.sub(cursor, 1, 1) == 'L' or spent >= budget then  -- come back for the rest
    redis.call('HSET', KEYS[2], run, cursor)
  else
    repeat
      local page = redis.call('HSCAN', rk .. 'tasks', cursor, 'COUNT',
                              math.max(budget - spent, 10))
      cursor = page[1]
      local fields = page[2]
      for f = 2, #fields, 2 do
        local jk = prefix .. fields[f]
        local st = redis.call('HMGET', jk, 'status', 'queue', 'pinned', 'source_job')
        local bk = jk .. JobKey.BORROWERS
        local borrowers = redis.call('GET', bk)
        if borrowers then hand_over(fields[f], run, jk, borrowers) end  -- before its pin goes
        if st[4] then leave(st[4], fields[f]) end
        if st[3] and redis.call('HINCRBY', KEYS[4], st[3], -1) <= 0 then
          redis.call('HDEL', KEYS[4], st[3])
          released[#released + 1] = st[3]
        end
        local zset = parked[st[1] or '']
        if zset and st[2] then
          redis.call('ZREM', queue_prefix .. st[2] .. ':' .. zset, fields[f])
        end
        redis.call('DEL', jk, jk .. psuffix, jk .. rsuffix, jk .. ARGV[9], bk)
        deleted, spent = deleted + 1, spent + 1
      end
    until cursor == '0' or spent >= budget
    if cursor == '0' then
      for code in string.gmatch(redis.call('GET', rk .. 'codes') or '', '[^,]+') do
        if redis.call('HINCRBY', KEYS[3], code, -1) <= 0 then
          redis.call('DEL', code)
          redis.call('HDEL', KEYS[3], code)
        end
      end
      local root = redis.call('GET', rk .. 'store')
      if root then
        finished[#finished + 1] = run
        finished[#finished + 1] = root
      end
      for _, field in ipairs(redis.call('HKEYS', rk .. 'staged')) do  -- a staged submit's
        if string.sub(field, 1, 2) == 'q:' then                       -- roots (submit_run)
          redis.call('DEL', rk .. 'roots:' .. string.sub(field, 3))
        end
      end
      redis.call('DEL', rk .. 'tasks', rk .. 'remaining', rk .. 'children', rk .. 'events',
                 rk .. 'codes', rk .. 'meta', rk .. 'store', rk .. 'walk', rk .. 'skips',
                 rk .. 'ready', rk .. 'borrowers', rk .. 'staged')
      redis.call('HDEL', KEYS[2], run)
    else
      redis.call('HSET', KEYS[2], run, cursor)
    end
  end
end
return {redis.call('HLEN', KEYS[2]), deleted, released, finished}
