-- Adds one request to one baseline subject (a user or a peer group) and returns its counters.
-- memory-store.ts implements the same steps in the same order; change both together.
--
-- KEYS: 1 stats hash, 2 hour-of-week hash, 3 network hash, 4 device hash,
--       5 minute hash, 6 hour hash, 7 day hash, 8 hour patient set, 9 day patient set
-- ARGV: 1 member, 2 hour of week, 3 network hash, 4 device hash,
--       5 minute TTL ms, 6 hour TTL ms, 7 day TTL ms, 8 long TTL ms,
--       9 network cap, 10 device cap, 11 patient cap, 12 decay threshold in active minutes,
--       13.. patient pseudonyms
-- Reply: the integers of SUBJECT_FIELDS in store.ts, in that order.
local stats, week, networks, devices = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, hourOfWeek = ARGV[1], ARGV[2]
local networkCap, deviceCap = tonumber(ARGV[9]), tonumber(ARGV[10])
local patientCap, decayAt = tonumber(ARGV[11]), tonumber(ARGV[12])

local minuteRequests = redis.call('HINCRBY', KEYS[5], member, 1)
local hourRequests = redis.call('HINCRBY', KEYS[6], member, 1)
local dayRequests = redis.call('HINCRBY', KEYS[7], member, 1)

redis.call('HINCRBY', stats, 'req', 1)
if minuteRequests == 1 then
  redis.call('HINCRBY', stats, 'min', 1)
  redis.call('HINCRBY', stats, 'wt', 1)
  redis.call('HINCRBY', week, hourOfWeek, 1)
end
if hourRequests == 1 then
  redis.call('HINCRBY', stats, 'hr', 1)
end
if dayRequests == 1 then
  redis.call('HINCRBY', stats, 'day', 1)
  redis.call('HINCRBY', stats, 'hist', 1)
end

local function addPatient(set, field, pair)
  if redis.call('SISMEMBER', set, pair) == 1 then
    return
  end
  if redis.call('SCARD', set) >= patientCap then
    return
  end
  redis.call('SADD', set, pair)
  redis.call('HINCRBY', stats, field, 1)
end

for i = 13, #ARGV do
  local pair = member .. ':' .. ARGV[i]
  addPatient(KEYS[8], 'ph', pair)
  addPatient(KEYS[9], 'pd', pair)
end

-- Counts requests per network or device; returns the count before this request.
local function remember(hash, value, cap)
  local before = tonumber(redis.call('HGET', hash, value) or 0)
  if before > 0 or redis.call('HLEN', hash) < cap then
    redis.call('HINCRBY', hash, value, 1)
  end
  return before
end

local networkRequests = remember(networks, ARGV[3], networkCap)
local deviceRequests = remember(devices, ARGV[4], deviceCap)

-- Integer halving keeps the ratios and lets old behaviour fade. 'hist' is never halved.
if tonumber(redis.call('HGET', stats, 'min')) > decayAt then
  local fields = redis.call('HGETALL', stats)
  for i = 1, #fields, 2 do
    if fields[i] ~= 'hist' then
      redis.call('HSET', stats, fields[i], math.floor(tonumber(fields[i + 1]) / 2))
    end
  end
  local buckets = redis.call('HGETALL', week)
  for i = 1, #buckets, 2 do
    redis.call('HSET', week, buckets[i], math.floor(tonumber(buckets[i + 1]) / 2))
  end
end

redis.call('PEXPIRE', KEYS[5], ARGV[5])
redis.call('PEXPIRE', KEYS[6], ARGV[6])
redis.call('PEXPIRE', KEYS[8], ARGV[6])
redis.call('PEXPIRE', KEYS[7], ARGV[7])
redis.call('PEXPIRE', KEYS[9], ARGV[7])
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[8])
end

local s = redis.call('HMGET', stats, 'req', 'min', 'hr', 'day', 'ph', 'pd', 'wt', 'hist')
local function int(value)
  return tonumber(value or 0) or 0
end

return {
  int(s[1]), int(s[2]), int(s[3]), int(s[4]), int(s[5]), int(s[6]),
  int(redis.call('HGET', week, hourOfWeek)), int(s[7]), int(s[8]),
  networkRequests, redis.call('HLEN', networks),
  deviceRequests, redis.call('HLEN', devices),
  minuteRequests,
  redis.call('SCARD', KEYS[8]),
  redis.call('SCARD', KEYS[9]),
}
