--[[ purge_dead: delete jobs of the dead-letter queue for good (bounded per call).

Removes up to `limit` entries of the dead ZSET together with each job's hash, payload, result
and logs keys, except the keys of a DAG run's task (a `run` field), which live as long as their
run (run.to_dataframe() and retry_failed() read them; runs are deleted whole by
delete_runs.lua): those only leave the dead ZSET. The caller repeats until a call returns less
than `limit`.

KEYS[1] dead  ZSET id -> time it failed for good (ms)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] result_suffix   result key = job_prefix .. id .. result_suffix
ARGV[4] limit           how many jobs to purge at most
ARGV[5] logs_suffix     logs key = job_prefix .. id .. logs_suffix
Returns: the number of entries removed from the dead-letter queue.
]]
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
for _, id in ipairs(ids) do
  local jk = ARGV[1] .. id
  if redis.call('HEXISTS', jk, 'run') == 0 then
    redis.call('DEL', jk, jk .. ARGV[2], jk .. ARGV[3], jk .. ARGV[5])
  end
end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
