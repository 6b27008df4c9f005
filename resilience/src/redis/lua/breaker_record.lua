-- Shared circuit breaker: report one call's outcome.
-- KEYS[1] breaker hash (see breaker_acquire.lua)
-- ARGV[1] 1 success / 0 failure, ARGV[2] failure threshold, ARGV[3] success threshold,
-- ARGV[4] 1 if the permit was a half-open trial
-- Returns the state after (0 closed, 1 half-open, 2 open).
local failure_threshold = tonumber(ARGV[2])
local success_threshold = tonumber(ARGV[3])
-- Checked before any write: a bad threshold found after the first HINCRBY would half-apply.
if not (failure_threshold and failure_threshold >= 1 and success_threshold and success_threshold >= 1) then
  return redis.error_reply('ERR breaker_record: the thresholds must be >= 1')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local success = ARGV[1] == '1'
local state = tonumber(redis.call('HGET', KEYS[1], 'state')) or 0
if state == 1 then
  if ARGV[4] ~= '1' then
    return 1 -- a call admitted while closed, finishing late: the trials decide now
  end
  if tonumber(redis.call('HGET', KEYS[1], 'inflight') or '0') > 0 then
    redis.call('HINCRBY', KEYS[1], 'inflight', -1)
  end
  if not success then
    redis.call('HSET', KEYS[1], 'state', 2, 'opened_at', now, 'failures', 0, 'successes', 0, 'inflight', 0)
    return 2
  end
  if redis.call('HINCRBY', KEYS[1], 'successes', 1) >= success_threshold then
    redis.call('DEL', KEYS[1])
    return 0
  end
  return 1
end
if state == 2 then
  return 2
end
if success then
  redis.call('DEL', KEYS[1])
  return 0
end
if redis.call('HINCRBY', KEYS[1], 'failures', 1) >= failure_threshold then
  redis.call('HSET', KEYS[1], 'state', 2, 'opened_at', now, 'failures', 0)
  return 2
end
return 0
