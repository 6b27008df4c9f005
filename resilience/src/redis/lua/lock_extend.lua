-- Extend a lock's TTL, only by its owner. KEYS[1] lock, ARGV[1] owner id, ARGV[2] ttl ms (whole,
-- 1 to 3153600000000 = 100 years).
-- Returns 1 extended, 0 not ours (expired, released or taken over), -1 bad ttl (nothing changed).
local ttl = ARGV[2]
if not (ttl:match('^[1-9]%d*$') and #ttl <= 13 and tonumber(ttl) <= 3153600000000) then
  return -1
end
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
return 0
