--[[ settle_delivery: record how one attempt of a webhook delivery ended.

Steps: (1) fence: the caller's token must be the delivery's (a dispatcher whose lease expired
and whose delivery was claimed again is refused: -2); (2) record the attempt's HTTP status and
error; (3) by outcome: 'delivered' -> status delivered, `delivered` time, out of the outbox,
into the delivered ZSET (kept at `keep` entries, the oldest deleted with their hash);
'retry' -> status pending, due now + delay_ms in the outbox; 'dead' -> given up (the retry
schedule is used up); 'disable' -> given up, and the endpoint is disabled (its route removed,
`disabled` set in its settings): a 410 Gone answer. Helpers: delivery_helpers.lua.

KEYS[1] delivery   HASH of the delivery
KEYS[2] outbox     ZSET delivery id -> next attempt / lease deadline (ms)
KEYS[3] delivered  ZSET delivery id -> time delivered (ms)
KEYS[4] dead       ZSET delivery id -> time given up (ms)
KEYS[5] endpoints  HASH endpoint id -> settings (JSON)
KEYS[6] routes     HASH endpoint id -> filter (JSON)
ARGV[1] delivery_id     id of the delivery
ARGV[2] token           the caller's token (from claim_deliveries)
ARGV[3] outcome         'delivered' | 'retry' | 'dead' | 'disable'
ARGV[4] delay_ms        retry: how long until the next attempt (ms)
ARGV[5] http_status     the receiver's HTTP status ('' when there was no answer)
ARGV[6] error           what went wrong ('' when delivered)
ARGV[7] keep            deliveries kept in the delivered ZSET, and in the dead ZSET
ARGV[8] delivery_prefix a delivery's hash is delivery_prefix .. id
Returns: {status, due_ms} (due_ms 0 unless retried), or {code, detail}: -1 no such delivery,
  -2 token differs (detail = its status).
]]
local did, outcome = ARGV[1], ARGV[3]
local d = redis.call('HMGET', KEYS[1], 'status', 'token', 'endpoint')
if not d[1] then return {ErrorCode.NOT_FOUND, ''} end
if d[2] ~= ARGV[2] then return {ErrorCode.STALE_TOKEN, d[1]} end
local now = now_ms()
redis.call('HSET', KEYS[1], 'last_status', ARGV[5], 'last_error', ARGV[6], 'updated', now)
if outcome == 'retry' then
  local due = now + tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'status', DeliveryStatus.PENDING, 'next', due)
  redis.call('HDEL', KEYS[1], 'token')
  redis.call('ZADD', KEYS[2], due, did)
  return {DeliveryStatus.PENDING, due}
end
redis.call('ZREM', KEYS[2], did)
if outcome == 'delivered' then
  redis.call('HSET', KEYS[1], 'status', DeliveryStatus.DELIVERED, 'delivered', now, 'error', '')
  redis.call('HDEL', KEYS[1], 'token', 'next')
  redis.call('ZADD', KEYS[3], now, did)
  delivery_trim(KEYS[3], ARGV[7], ARGV[8])
  return {DeliveryStatus.DELIVERED, 0}
end
if outcome == 'disable' then
  local ep = redis.call('HGET', KEYS[5], d[3])
  if ep then
    local settings = cjson.decode(ep)
    settings.disabled = ARGV[6]
    settings.disabled_at = now
    redis.call('HSET', KEYS[5], d[3], cjson.encode(settings))
  end
  redis.call('HDEL', KEYS[6], d[3])
end
delivery_give_up(KEYS[1], did, KEYS[4], ARGV[7], ARGV[8], now, ARGV[6])
return {DeliveryStatus.DEAD, 0}
