--[[ register_endpoint: add a webhook endpoint and its route in one step.

The settings (URL, filter, secrets, SSRF opt-out) go to the endpoints HASH; the filter alone
goes to the routes HASH that the transition scripts read (outbox_helpers.lua), so that from
this script on, matching events get a delivery for this endpoint.

KEYS[1] endpoints  HASH endpoint id -> settings (JSON)
KEYS[2] routes     HASH endpoint id -> filter (JSON)
ARGV[1] endpoint_id  new endpoint id
ARGV[2] settings     settings JSON
ARGV[3] filter       filter JSON: {"events": [...], "pipeline": name|null, "queue": name|null}
Returns: 1, or 0 when the id exists already (nothing written).
]]
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
