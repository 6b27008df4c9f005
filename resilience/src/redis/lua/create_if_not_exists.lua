-- Create a versioned value (hash: val, ver=1) unless the key exists.
-- KEYS[1] key, ARGV[1] value, ARGV[2] ttl ms (0: no expiry; else whole, 1 to 3153600000000 =
-- 100 years)
-- Returns {1, 1} created, {0, version} exists (version -1: a value not written by us), {-1, 0}
-- bad ttl. The ttl is checked before the write, so a value is never stored without the expiry
-- the caller asked for.
local ttl = ARGV[2]
if not (ttl == '0' or (ttl:match('^[1-9]%d*$') and #ttl <= 13 and tonumber(ttl) <= 3153600000000)) then
  return {-1, 0}
end
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'none' then
  local ver = kind == 'hash' and redis.call('HGET', KEYS[1], 'ver')
  if ver and ver:match('^[1-9]%d*$') and #ver <= 15 then
    return {0, tonumber(ver)}
  end
  return {0, -1}
end
redis.call('HSET', KEYS[1], 'val', ARGV[1], 'ver', 1)
if ttl ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, 1}
