--[[ save_logs: store the tail of what one attempt of a job printed and logged.

Written by the executor that runs the attempt, at most about once a second while it runs and
once when it ends; each call replaces the attempt's text (the executor keeps the tail, capped,
and sends all of it). Not fenced by the lease token: a late writer (a lease lost to a stall)
writes the output of its own attempt number, which is the truth about that attempt. Nothing is
written for a job whose meta hash is gone (trimmed, purged, its run deleted), so that no log
outlives its job; the TTL (the result TTL) bounds the logs of jobs that live on.

KEYS[1] job   HASH meta of the job
KEYS[2] logs  HASH attempt number -> text
ARGV[1] attempt  attempt number (the lease's)
ARGV[2] text     the attempt's output so far (UTF-8, capped by the caller)
ARGV[3] ttl_ms   how long the logs are kept after this write (ms)
Returns: {1}, or {-1, ''} (JOB_NOT_FOUND: no meta hash; nothing written).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {ErrorCode.JOB_NOT_FOUND, ''} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1}
