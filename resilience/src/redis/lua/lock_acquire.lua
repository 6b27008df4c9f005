-- Acquire a lock (SET NX PX style) with a fencing token.
-- KEYS[1] lock (hash: owner, token), KEYS[2] fencing counter (never expires; same slot)
-- ARGV[1] owner id, ARGV[2] ttl ms (whole, 1 to 3153600000000 = 100 years)
-- Returns {1, token} when acquired (or already ours: same token, TTL refreshed, so a retry after
-- a timeout is safe), {0, pttl} when another owner holds it, {-1, 0} for a bad ttl, {-2, 0} when
-- the counter holds something that is not a token. All checks come before the first write, and
-- the writes cannot fail after them: a refused call changes nothing.
local ttl = ARGV[2]
if not (ttl:match('^[1-9]%d*$') and #ttl <= 13 and tonumber(ttl) <= 3153600000000) then
  return {-1, 0}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, tonumber(redis.call('HGET', KEYS[1], 'token'))}
elseif owner then
  return {0, redis.call('PTTL', KEYS[1])}
end
-- Token = max(counter + 1, server time in µs): it keeps growing even after a restart or failover
-- that lost the counter, as long as the server's clock is not stepped back. Below 2^53 (year
-- 2255 in µs) Lua's numbers are exact.
local last = redis.call('GET', KEYS[2])
if last and not (last:match('^%d+$') and #last <= 16 and tonumber(last) < 9007199254740991) then
  return {-2, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local token = string.format('%.0f', math.max((tonumber(last) or 0) + 1, now))
redis.call('SET', KEYS[2], token)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, tonumber(token)}
