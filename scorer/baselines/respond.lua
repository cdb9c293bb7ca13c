-- Records one response (status and bytes) in the user's baseline. Runs after the response has
-- gone out, never on the request path. memory-store.ts implements the same steps.
--
-- KEYS: 1 stats hash, 2 hour response hash
-- ARGV: 1 bytes, 2 denied (1 for 403 or 404, else 0), 3 hour TTL ms, 4 long TTL ms
local responses = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('HINCRBY', KEYS[2], 'bytes', tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[2], 'denied', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'rb', tonumber(ARGV[1]))
if responses == 1 then
  redis.call('HINCRBY', KEYS[1], 'rh', 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return responses
