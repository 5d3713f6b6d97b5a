--[[ clear_cache: drop cache entries (all of them, or those of one pipeline), in bounded steps.

Steps: walk the cache index from rank `start` for up to `budget` entries; an entry whose STRING
is gone (expired) only leaves the index; an entry of `pipeline` (or any entry when pipeline is
'') is deleted and leaves the index. Entries are only pointers to a job holding the result:
deleting one never touches a run, and the next submit of that task computes it again.

KEYS[1] cache_index  ZSET cache key -> expiry time (ms)
ARGV[1] cache_prefix the entry of key <k> is cache_prefix .. k
ARGV[2] pipeline     only entries of this pipeline ('' = every entry)
ARGV[3] start        index rank to start from (entries kept by an earlier step come first)
ARGV[4] budget       entries examined by this call
Returns: {entries deleted, next start rank, or -1 when the index has been walked to its end}
]]
local prefix, pipeline = ARGV[1], ARGV[2]
local start, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local keys = redis.call('ZRANGE', KEYS[1], start, start + budget - 1)
local deleted, kept = 0, 0
for _, key in ipairs(keys) do
  local entry = redis.call('GET', prefix .. key)  -- "<job> <origin> <created> <task> <pipeline>"
  local owner = entry and string.match(entry, '^%S+ %S* %S+ %S+ (.*)$')
  if not owner or pipeline == '' or owner == pipeline then
    if owner then deleted = deleted + 1 end
    redis.call('DEL', prefix .. key)
    redis.call('ZREM', KEYS[1], key)
  else
    kept = kept + 1
  end
end
if #keys < budget then return {deleted, -1} end
return {deleted, start + kept}
