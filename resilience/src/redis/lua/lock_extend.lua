-- Extend a lock's TTL, only by its owner. KEYS[1] lock, ARGV[1] owner id, ARGV[2] ttl ms.
-- Returns 1 extended, 0 not ours (expired, released or taken over).
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
