-- Release a lock, only by its owner. KEYS[1] lock, ARGV[1] owner id. Returns 1 released, 0 not ours.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
