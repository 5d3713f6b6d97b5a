--[[ claim_deliveries: lease up to n due webhook deliveries to one dispatcher.

A delivery is due when its outbox score (next attempt, or the deadline of an earlier claim's
lease) has passed. Each due delivery gets a fresh token (the caller's, unique per call), one
more attempt, status 'sending' and the lease deadline as its score: a dispatcher that dies
mid-delivery leaves it to whoever claims it after the deadline, and its late settle_delivery
is refused. A delivery whose endpoint was removed or disabled is given up instead (dead, with
the reason). Steps are bounded by n. Helpers: delivery_helpers.lua, prepended at load time.

KEYS[1] outbox     ZSET delivery id -> next attempt / lease deadline (ms)
KEYS[2] endpoints  HASH endpoint id -> settings (JSON)
KEYS[3] routes     HASH endpoint id -> filter (JSON), enabled endpoints only
KEYS[4] dead       ZSET delivery id -> time given up (ms)
ARGV[1] delivery_prefix  a delivery's hash is delivery_prefix .. id
ARGV[2] dispatcher       name of the claiming dispatcher
ARGV[3] lease_ms         lease length (ms)
ARGV[4] n                most deliveries to claim
ARGV[5] token            the caller's token, unique per call
ARGV[6] dead_keep        dead deliveries kept
Returns: {next_ms, now, claimed...}: next_ms = the earliest outbox score left (-1 if the outbox
  is empty), now = server time (ms), then per claimed delivery a list {id, token, attempts,
  endpoint settings JSON, event number, type, created ms, data JSON}.
]]
local now = now_ms()
local dprefix, lease = ARGV[1], tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local out = {0, now}
for _, did in ipairs(due) do
  local dk = dprefix .. did
  local d = redis.call('HMGET', dk, 'endpoint', 'event', 'type', 'created', 'data', 'attempts')
  if not d[1] then
    redis.call('ZREM', KEYS[1], did)  -- its hash is gone (trimmed): nothing to send
  else
    local ep = redis.call('HGET', KEYS[2], d[1])
    if not ep or redis.call('HEXISTS', KEYS[3], d[1]) == 0 then
      redis.call('ZREM', KEYS[1], did)
      delivery_give_up(dk, did, KEYS[4], ARGV[6], dprefix, now,
                       ep and 'endpoint disabled' or 'endpoint removed')
    else
      local attempts = tonumber(d[6] or '0') + 1
      redis.call('HSET', dk, 'status', DeliveryStatus.SENDING, 'token', ARGV[5], 'dispatcher', ARGV[2],
                 'attempts', attempts, 'updated', now)
      redis.call('ZADD', KEYS[1], now + lease, did)
      out[#out + 1] = {did, ARGV[5], attempts, ep, d[2], d[3], d[4], d[5]}
    end
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
out[1] = first[2] and tonumber(first[2]) or -1
return out
