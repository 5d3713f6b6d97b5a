--[[ rotate_secret: give a webhook endpoint a new signing secret, keeping the old one for a
grace period.

Settings' `secrets` is a list, newest first, of {key = 'whsec_...', expires = ms or absent}.
The new secret goes first; the one that was current gets `expires` = now + grace_ms; secrets
whose expiry has passed are dropped. Until the grace period ends, dispatchers sign with every
listed secret (one ``v1,`` signature each), so receivers can switch at their own pace.

KEYS[1] endpoints  HASH endpoint id -> settings (JSON)
ARGV[1] endpoint_id  the endpoint
ARGV[2] secret       the new secret
ARGV[3] grace_ms     how long the current secret keeps signing (ms)
Returns: the new settings JSON, or {-1, ''} when there is no such endpoint.
]]
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {ErrorCode.NOT_FOUND, ''} end
local now = now_ms()
local settings = cjson.decode(raw)
local kept = {{key = ARGV[2]}}
for i, s in ipairs(settings.secrets) do
  if i == 1 then
    kept[#kept + 1] = {key = s.key, expires = now + tonumber(ARGV[3])}
  elseif s.expires and s.expires ~= cjson.null and s.expires > now then
    kept[#kept + 1] = s
  end
end
settings.secrets = kept
local out = cjson.encode(settings)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
