--[[ delivery_helpers: shared by the scripts that move webhook deliveries (claim_deliveries,
settle_delivery). Not a script on its own: `scripting.assemble` puts it before them at load time.

  delivery_give_up(dk, did, dead, keep, dprefix, now, err)  the delivery is dead: status
      'dead', `error`, out of the outbox (the host removes it), into the dead ZSET, which is
      kept at `keep` entries (the oldest are deleted with their hash)
]]
local function delivery_trim(zset, keep, dprefix)
  local excess = redis.call('ZCARD', zset) - tonumber(keep)
  if excess <= 0 then return end
  local old = redis.call('ZPOPMIN', zset, math.min(excess, 100))
  for p = 1, #old, 2 do redis.call('DEL', dprefix .. old[p]) end
end

local function delivery_give_up(dk, did, dead, keep, dprefix, now, err)
  redis.call('HSET', dk, 'status', DeliveryStatus.DEAD, 'error', err, 'updated', now)
  redis.call('HDEL', dk, 'token', 'next')
  redis.call('ZADD', dead, now, did)
  delivery_trim(dead, keep, dprefix)
end
