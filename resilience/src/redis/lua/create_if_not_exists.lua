-- Create a versioned value (hash: val, ver=1) unless the key exists.
-- KEYS[1] key, ARGV[1] value, ARGV[2] ttl ms (0: no expiry)
-- Returns {1, 1} created, {0, version} exists (version -1: a value not written by us).
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'none' then
  if kind ~= 'hash' then return {0, -1} end
  return {0, tonumber(redis.call('HGET', KEYS[1], 'ver')) or -1}
end
redis.call('HSET', KEYS[1], 'val', ARGV[1], 'ver', 1)
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {1, 1}
