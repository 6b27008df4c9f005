-- Replace a versioned value if its version is the expected one; the TTL is kept.
-- KEYS[1] key, ARGV[1] expected version, ARGV[2] new value
-- Returns {1, new version}, or {0, current version} (-1: no such key, -2: not a versioned value).
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return {0, -1} end
if kind ~= 'hash' then return {0, -2} end
local ver = redis.call('HGET', KEYS[1], 'ver')
-- Ours are 1, 2, ...: at most 15 digits, so the increment below can neither overflow nor fail.
if not (ver and ver:match('^[1-9]%d*$') and #ver <= 15) then return {0, -2} end
if ver ~= ARGV[1] then return {0, tonumber(ver)} end
-- The version first: if it could not grow, nothing has been written.
local new = redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('HSET', KEYS[1], 'val', ARGV[2])
return {1, new}
