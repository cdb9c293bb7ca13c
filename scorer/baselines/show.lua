-- Records that a response showed patients to the user: a patient whom observe.lua added as
-- pending (history score -2) becomes known with the current UTC day. A patient withheld after a
-- block (-1) stays withheld, and a patient not in the history is not added, so the history's cap
-- and window hold. memory-store.ts implements the same steps.
--
-- KEYS: 1 patient history sorted set
-- ARGV: 1 UTC day, 2.. patient pseudonyms
local promoted = 0
for i = 2, #ARGV do
  -- The history member is the pseudonym's first 16 bytes, as in observe.lua.
  local member = string.sub(ARGV[i], 1, 16)
  if tonumber(redis.call('ZSCORE', KEYS[1], member) or 0) == -2 then
    redis.call('ZADD', KEYS[1], ARGV[1], member)
    promoted = promoted + 1
  end
end
return promoted
