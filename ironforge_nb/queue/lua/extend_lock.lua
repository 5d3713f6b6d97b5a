--[[ extend_lock: give a lock we own a new time to live, counted from now.

  Steps:
    1. Compare the lock's token with ours (GET), in the same script as the expiry change.
    2. If they match, set the expiry to ttl_ms from now (PEXPIRE); otherwise change nothing:
       a lock that expired cannot be revived by its former owner.

  KEYS[1]  lock      STRING, the owner's token ({ns}:lock:<name>)
  ARGV[1]  token     the caller's token
  ARGV[2]  ttl_ms    new time to live, in milliseconds from now (integer >= 1)

  Returns 1  extended
          0  not ours (free, expired, or held by another owner): nothing changed
]]
local lock = KEYS[1]
local token = ARGV[1]
local ttl_ms = tonumber(ARGV[2])

if redis.call('GET', lock) == token then
  redis.call('PEXPIRE', lock, ttl_ms)
  return 1
end
return 0
