--[[ claim_jobs: hand up to N ready jobs to a worker under a lease (atomic: P0-1).

Steps: (1) promote scheduled jobs that are due (at most promote_limit per call) to the wait
ZSET, behind the jobs already queued at their priority; (2) pop the N best jobs of the wait
ZSET (highest priority, then FIFO); (3) for each: claims + 1, status active, a fresh lease
token (from the seq counter, so unique), deadline = Redis TIME + lease, entry in the active
ZSET, a 'claimed' event, `started` = now for the first `start` jobs (the others are held:
claimed ahead, see claim_helpers.lua); return its payload and the stable fields of its meta hash (queue,
priority, max_attempts, backoff_ms, created, run, task, user fields). Entries whose hash says
anything but 'queued' are dropped (never claimed twice).
Steps (1)-(3) are claim_ready() of claim_helpers.lua, prepended at load time and shared with
complete_job.lua ("complete and fetch next").

KEYS[1] wait       ZSET id -> priority/FIFO score
KEYS[2] scheduled  ZSET id -> due time (ms)
KEYS[3] active     ZSET id -> lease deadline (ms)
KEYS[4] events     STREAM of the queue's transitions
KEYS[5] seq        STRING counter (FIFO order, lease tokens)
KEYS[6] receipt    STRING the worker's last claim in this queue (safe resends, see
                   claim_helpers.lua)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  the payload of job <id> is job_prefix .. id .. payload_suffix
ARGV[3] queue           queue name
ARGV[4] events_maxlen   approximate cap of the events stream
ARGV[5] worker          worker name, stored in the meta hash
ARGV[6] lease_ms        lease length (ms)
ARGV[7] n               how many jobs to claim at most
ARGV[8] promote_limit   how many due scheduled jobs to promote at most
ARGV[9] result_suffix   the result of job <id> is job_prefix .. id .. result_suffix
ARGV[10] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix (events of DAG tasks)
ARGV[11] start          how many of the claimed jobs start now (the first ones; the rest held)
ARGV[12] request_id     made once per logical call ('' = none): a resend of a call that ran
                        returns that call's jobs again and claims nothing (claim_helpers.lua)
Returns: {wait_ms, then per claimed job: id, token, attempt (attempts + 1), deadline_ms, payload, stable meta
          fields as a flat field/value list, inputs (parents' results of a DAG task, see
          claim_helpers.lua) as a flat job id/result list}. wait_ms is, when nothing was
          claimed, the time until the earliest scheduled job is due (a worker blocks at most
          that long), else 0.
]]
local now = now_ms()
return claim_ready({wait = KEYS[1], scheduled = KEYS[2], active = KEYS[3], events = KEYS[4],
                    seq = KEYS[5], prefix = ARGV[1], psuffix = ARGV[2], rsuffix = ARGV[9],
                    run_prefix = ARGV[10], queue = ARGV[3], maxlen = ARGV[4],
                    worker = ARGV[5], lease = tonumber(ARGV[6]), lease_text = ARGV[6],
                    limit_text = ARGV[8], start = tonumber(ARGV[11]),
                    rid = ARGV[12], receipt = KEYS[6]},
                   now, tonumber(ARGV[7]))
