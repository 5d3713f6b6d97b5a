--[[ purge_dead: delete jobs of the dead-letter queue for good (bounded per call).

Removes up to `limit` entries of the dead ZSET together with each job's hash, payload and
result keys. The caller repeats until a call returns less than `limit`.

KEYS[1] dead  ZSET id -> time it failed for good (ms)
ARGV[1] job_prefix      the meta hash of job <id> is job_prefix .. id
ARGV[2] payload_suffix  payload key = job_prefix .. id .. payload_suffix
ARGV[3] result_suffix   result key = job_prefix .. id .. result_suffix
ARGV[4] limit           how many jobs to purge at most
Returns: the number of jobs purged.
]]
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
for _, id in ipairs(ids) do
  local jk = ARGV[1] .. id
  redis.call('DEL', jk, jk .. ARGV[2], jk .. ARGV[3])
end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
