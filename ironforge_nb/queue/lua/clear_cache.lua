--[[ clear_cache: drop cache entries (all of them, or those of one pipeline), in bounded steps.

Steps: walk the cache index from rank `start` for up to `budget` keys (one HMGET of their
entries); a key whose entry is gone only leaves the index; an entry of `pipeline` (or any entry
when pipeline is '') leaves the entries HASH and the index. Entries are only pointers to a job
holding the result: deleting one never touches a run, and the next submit of that task
computes it again.

KEYS[1] cache_index    ZSET cache key -> expiry time (ms)
KEYS[2] cache_entries  HASH cache key -> "<job> <origin> <created> <expires> <task> <pipeline>"
ARGV[1] pipeline       only entries of this pipeline ('' = every entry)
ARGV[2] start          index rank to start from (entries kept by an earlier step come first)
ARGV[3] budget         entries examined by this call
Returns: {entries deleted, next start rank, or -1 when the index has been walked to its end}
]]
local pipeline = ARGV[1]
local start, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local keys = redis.call('ZRANGE', KEYS[1], start, start + budget - 1)
local deleted, kept, gone, ng = 0, 0, {}, 0
if #keys > 0 then
  local entries = redis.call('HMGET', KEYS[2], unpack(keys))
  for i, key in ipairs(keys) do
    local entry = entries[i]
    local owner = entry and string.match(entry, '^%S+ %S* %S+ %S+ %S+ (.*)$')
    if not owner or pipeline == '' or owner == pipeline then
      if owner then deleted = deleted + 1 end
      ng = ng + 1
      gone[ng] = key
    else
      kept = kept + 1
    end
  end
end
if ng > 0 then
  redis.call('HDEL', KEYS[2], unpack(gone, 1, ng))
  redis.call('ZREM', KEYS[1], unpack(gone, 1, ng))
end
if #keys < budget then return {deleted, -1} end
return {deleted, start + kept}
