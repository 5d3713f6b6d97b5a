--[[ release_claim: hand back for free the jobs of a claim whose caller died before running them.

An executor that completes its task and claims the next job in the same call (complete_job.lua
with a request id and a receipt of its own, see worker/executor.py) tells its worker about the
claimed lease before that lease's code runs. When the executor dies (killed by its worker, a
timeout, a stop past the grace, or on its own) without having told it, the worker knows that
no code of that claim began, and hands its jobs back with this script: each job still active
under the token the receipt names goes to the FRONT of its priority level in the wait ZSET,
nothing charged (lease_release of lease_helpers.lua, as release_job.lua does), even though the
claim marked it started. Whatever the receipt says, the receipt is left holding the request id
alone, so that the claim itself, should it reach Redis only now (sent before the executor died,
read after this call), is answered as a resend of a claim whose jobs moved on: it claims
nothing (claim_helpers.lua, claim_replay). The lease helpers (lease_helpers.lua) and run
helpers (run_helpers.lua) are prepended at load time.

KEYS[1] receipt  STRING the executor's receipt in this queue (keys.py `receipt`)
KEYS[2] active   ZSET id -> lease deadline (ms)
KEYS[3] wait     ZSET id -> priority/FIFO score
KEYS[4] wake     LIST idle workers block on (a hint only)
KEYS[5] events   STREAM of the queue's transitions
ARGV[1] request_id     the id the executor's claim was sent with
ARGV[2] ttl_ms         how long the receipt is kept (the lease length)
ARGV[3] job_prefix     the meta hash of job <id> is job_prefix .. id
ARGV[4] queue          queue name
ARGV[5] events_maxlen  approximate cap of the events stream
ARGV[6] run_prefix     run keys = run_prefix .. run id .. ':' .. suffix
Returns: how many jobs were handed back.
]]
local mine = ARGV[1] .. '\n'
local receipt = redis.call('GET', KEYS[1])
local released = 0
if receipt and string.sub(receipt, 1, #mine) == mine then
  local now = now_ms()
  local q = {wait = KEYS[3], wake = KEYS[4], events = KEYS[5], queue = ARGV[4], maxlen = ARGV[5],
             ctx = run_ctx('', ARGV[6], '', ARGV[5])}
  for id, tok in string.gmatch(string.sub(receipt, #mine + 1), '([^ \n]+) ([^ \n]+)\n') do
    local jk = ARGV[3] .. id
    local refused, again = lease_fence(jk, tok, 'release')
    if not refused and not again then
      redis.call('ZREM', KEYS[2], id)
      lease_release(q, jk, id, now, lease_state(jk))
      redis.call('HSET', jk, 'ended', tok .. ' release ')
      released = released + 1
    end
  end
end
redis.call('SET', KEYS[1], mine, 'PX', ARGV[2])
return released
