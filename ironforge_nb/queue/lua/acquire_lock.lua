--[[ acquire_lock: take a named lock if it is free, or confirm we already hold it.

  Steps:
    1. SET the lock key to our token with NX and a PX expiry: taken if nobody holds it.
    2. Else, if the key already holds OUR token (a retried call whose first reply was lost
       on the network), refresh its expiry and report success: a retry must not report
       "held by another" for a lock we own.
    3. Else report the holder's remaining time to live, so a blocking caller knows how long
       to wait at most.

  KEYS[1]  lock      STRING, the owner's token ({ns}:lock:<name>)
  ARGV[1]  token     random token identifying this owner
  ARGV[2]  ttl_ms    time to live of the lock, in milliseconds (integer >= 1)

  Returns {1, ttl_ms}         acquired (or already ours): the lock now lives ttl_ms
          {0, holder_ttl_ms}  held by another owner; holder_ttl_ms is its PTTL
                              (-1 if it has no expiry)
]]
local lock = KEYS[1]
local token = ARGV[1]
local ttl_ms = tonumber(ARGV[2])

if redis.call('SET', lock, token, 'NX', 'PX', ttl_ms) then
  return {1, ttl_ms}
end
if redis.call('GET', lock) == token then
  redis.call('PEXPIRE', lock, ttl_ms)
  return {1, ttl_ms}
end
return {0, redis.call('PTTL', lock)}
