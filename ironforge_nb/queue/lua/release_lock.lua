--[[ release_lock: free a lock, only if the caller still owns it.

  Steps:
    1. Compare the lock's token with ours (GET), in the same script as the delete, so no
       other owner can take the lock in between.
    2. Delete it if they match; otherwise change nothing (the lock expired and may now
       belong to someone else, whose lock must survive).

  KEYS[1]  lock      STRING, the owner's token ({ns}:lock:<name>)
  ARGV[1]  token     the caller's token

  Returns 1  released
          0  not ours (free, expired, or held by another owner): nothing changed
]]
local lock = KEYS[1]
local token = ARGV[1]

if redis.call('GET', lock) == token then
  redis.call('DEL', lock)
  return 1
end
return 0
