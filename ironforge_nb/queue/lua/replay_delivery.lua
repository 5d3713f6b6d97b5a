--[[ replay_delivery: send a finished webhook delivery (dead, or delivered) again.

The delivery leaves the dead (or delivered) ZSET, gets status 'pending', its attempt count back
to 0 (the whole retry schedule again) and an outbox entry due now. It keeps its event number,
so the receiver sees the same ``webhook-id`` as before and can tell a resend from a new event.

KEYS[1] delivery   HASH of the delivery
KEYS[2] outbox     ZSET delivery id -> next attempt / lease deadline (ms)
KEYS[3] delivered  ZSET delivery id -> time delivered (ms)
KEYS[4] dead       ZSET delivery id -> time given up (ms)
ARGV[1] delivery_id  id of the delivery
Returns: {'pending', due_ms}, or {code, detail}: -1 no such delivery, -3 still on its way
  (detail = its status: pending or sending).
]]
local did = ARGV[1]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {ErrorCode.NOT_FOUND, ''} end
if status == DeliveryStatus.PENDING or status == DeliveryStatus.SENDING then
  return {ErrorCode.BAD_STATE, status}
end
local now = now_ms()
redis.call('ZREM', KEYS[3], did)
redis.call('ZREM', KEYS[4], did)
redis.call('HSET', KEYS[1], 'status', DeliveryStatus.PENDING, 'attempts', 0, 'next', now, 'error', '',
           'updated', now)
redis.call('HDEL', KEYS[1], 'token', 'delivered')
redis.call('ZADD', KEYS[2], now, did)
return {DeliveryStatus.PENDING, now}
