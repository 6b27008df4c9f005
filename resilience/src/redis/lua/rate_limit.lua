-- GCRA (a token bucket of `capacity` tokens refilled at 1 token per `emission` µs), one key,
-- clocked by the server's TIME so every client agrees on "now".
-- KEYS[1]  bucket: holds the theoretical arrival time (TAT, µs since the epoch)
-- ARGV[1]  capacity (burst, 1 to 2^40), ARGV[2] emission interval in µs (> 0, may be
--          fractional; capacity × emission at most 1e15), ARGV[3] cost (0 to capacity)
-- Returns {allowed 0/1, remaining tokens, retry_after µs, reset_after µs}, or {-1, 0, 0, 0} for
-- arguments out of range (checked before the only write, which then cannot fail).
local capacity = tonumber(ARGV[1])
local emission = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
if not (ARGV[1]:match('^[1-9]%d*$') and #ARGV[1] <= 13 and capacity <= 1099511627776
    and ARGV[3]:match('^%d+$') and #ARGV[3] <= 13 and cost <= capacity
    and emission and emission > 0 and emission * capacity <= 1e15) then
  return {-1, 0, 0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local burst = emission * capacity
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
elseif tat > now + burst then
  -- Only a clock stepped back (or a foreign value) puts the TAT beyond a full bucket: cap it,
  -- so waits stay within one refill and every reply fits an integer.
  tat = now + burst
end
local new_tat = tat + cost * emission
local allow_at = new_tat - burst
-- TATs are stored as whole µs: allow 1 µs of rounding when counting whole tokens.
if now < allow_at then
  local remaining = math.floor((now - (tat - burst) + 1) / emission)
  if remaining < 0 then remaining = 0 end
  if remaining > capacity then remaining = capacity end
  return {0, remaining, math.ceil(allow_at - now), math.ceil(tat - now)}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
if ttl_ms > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
end
local remaining = math.floor((now - allow_at + 1) / emission)
if remaining > capacity - cost then remaining = capacity - cost end
return {1, remaining, 0, math.ceil(new_tat - now)}
