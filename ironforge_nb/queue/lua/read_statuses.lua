--[[ read_statuses: the status of a chunk of a run's tasks, in one call (reads only).

A live monitor (re)reads a whole run's picture when it starts, or when the run's event stream
was trimmed past the last event it saw: one HGET per task from the client costs it about
30-70 us of client CPU each (10k tasks: about half a second, while the run's events keep
coming), here about 1 us of Redis time each. Steps: (1) HSCAN the run's tasks hash from
`cursor`, about `count` entries; (2) HGET the `status` field of each entry's job hash. Bounded
by `count`, so Redis serves other clients between two chunks; a task reported twice by HSCAN
(during a rehash) has the same status both times.

KEYS[1] tasks       HASH task id -> job id, of one run
ARGV[1] job_prefix  the meta hash of job <id> is job_prefix .. id
ARGV[2] cursor      HSCAN cursor: '0' for the first chunk, then the one returned
ARGV[3] count       HSCAN COUNT hint (entries per chunk, about)
Returns: {next_cursor, {task, status, task, status, ...}}: next_cursor '0' after the last
  chunk; status '' for a job hash that is gone.
]]
local scan = redis.call('HSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
local entries, out = scan[2], {}
for i = 1, #entries, 2 do
  out[#out + 1] = entries[i]
  out[#out + 1] = redis.call('HGET', ARGV[1] .. entries[i + 1], 'status') or ''
end
return {scan[1], out}
