-- Acquire a lock (SET NX PX style) with a fencing token.
-- KEYS[1] lock (hash: owner, token), KEYS[2] fencing counter (never expires; same hash tag)
-- ARGV[1] owner id, ARGV[2] ttl ms
-- Returns {1, token} when acquired (or already ours: same token, TTL refreshed, so a retry after
-- a timeout is safe), {0, pttl} when another owner holds it.
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('HGET', KEYS[1], 'token'))}
elseif owner then
  return {0, redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, token}
