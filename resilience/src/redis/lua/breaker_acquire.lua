-- Shared circuit breaker: ask to make one call. Clocked by the server's TIME.
-- KEYS[1] breaker hash: state (0 closed, 1 half-open, 2 open), failures, successes, opened_at,
--         half_open_at (ms), inflight (half-open trials under way). No key = closed, 0 failures.
-- ARGV[1] reset timeout ms, ARGV[2] half-open max concurrent trials
-- Returns {allowed 0/1, state, retry_after ms (when refused while open), failures, trial 0/1}.
local reset = tonumber(ARGV[1])
local max_trials = tonumber(ARGV[2])
-- Checked before any write (`>=` is false for NaN).
if not (reset and reset >= 1 and max_trials and max_trials >= 1) then
  return redis.error_reply('ERR breaker_acquire: the reset timeout and trial count must be >= 1')
end
-- A reset timeout beyond 2^52 ms (~142,000 years) means "never": capped, the arithmetic stays
-- exact and the retry_after reply fits an integer.
if reset > 4503599627370496 then reset = 4503599627370496 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'inflight', 'failures', 'half_open_at')
local state = tonumber(h[1]) or 0
if state == 0 then
  return {1, 0, 0, tonumber(h[4]) or 0, 0}
end
local inflight = tonumber(h[3]) or 0
if state == 2 then
  local wait = (tonumber(h[2]) or 0) + reset - now
  if wait > 0 then
    return {0, 2, wait, 0, 0}
  end
  redis.call('HSET', KEYS[1], 'state', 1, 'inflight', 0, 'successes', 0, 'half_open_at', now)
  inflight = 0
elseif now - (tonumber(h[5]) or 0) > reset then
  -- Trials whose outcome never came back (their process died): free their slots.
  redis.call('HSET', KEYS[1], 'inflight', 0, 'half_open_at', now)
  inflight = 0
end
if inflight >= max_trials then
  return {0, 1, 0, 0, 0}
end
redis.call('HINCRBY', KEYS[1], 'inflight', 1)
return {1, 1, 0, 0, 1}
