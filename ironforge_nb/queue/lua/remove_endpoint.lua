--[[ remove_endpoint: delete a webhook endpoint and its route in one step.

Transitions stop adding deliveries for it at once; its pending deliveries are given up
('endpoint removed') when a dispatcher claims them (claim_deliveries.lua).

KEYS[1] endpoints  HASH endpoint id -> settings (JSON)
KEYS[2] routes     HASH endpoint id -> filter (JSON)
ARGV[1] endpoint_id  the endpoint
Returns: 1 removed, 0 no such endpoint.
]]
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
