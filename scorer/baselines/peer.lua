-- Adds one request to a peer group's summary and returns the whole summary, which the store
-- caches in process. Runs after the request was scored, never on the request path, because
-- the group's keys carry the group's hash tag and usually live in another Cluster slot than
-- the user's. memory-store.ts implements the same steps in the same order.
--
-- KEYS: 1 stats hash, 2 hour-of-week hash, 3 network hash,
--       4 minute hash, 5 hour hash, 6 day hash, 7 hour patient set, 8 day patient set
-- ARGV: 1 member, 2 hour of week, 3 network hash,
--       4 minute TTL ms, 5 hour TTL ms, 6 day TTL ms, 7 long TTL ms,
--       8 network cap, 9 patient cap, 10 decay threshold in active minutes,
--       11 unexplained patients of the request (from the user's reply), 12.. patient pseudonyms
-- Reply: { the integers of PEER_FIELDS in store.ts, flat hour-of-week pairs, flat network pairs,
--          active minutes of the group in the current hour }
local stats, week, networks = KEYS[1], KEYS[2], KEYS[3]
local member, hourOfWeek = ARGV[1], ARGV[2]
local networkCap, patientCap, decayAt = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])

local minuteRequests = redis.call('HINCRBY', KEYS[4], member, 1)
local hourRequests = redis.call('HINCRBY', KEYS[5], member, 1)
local dayRequests = redis.call('HINCRBY', KEYS[6], member, 1)

redis.call('HINCRBY', stats, 'req', 1)
if minuteRequests == 1 then
  redis.call('HINCRBY', KEYS[5], 'm', 1)
  redis.call('HINCRBY', stats, 'min', 1)
  redis.call('HINCRBY', stats, 'wt', 1)
  redis.call('HINCRBY', week, hourOfWeek, 1)
end
if hourRequests == 1 then
  redis.call('HINCRBY', stats, 'hr', 1)
end
if dayRequests == 1 then
  redis.call('HINCRBY', stats, 'day', 1)
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

for i = 12, #ARGV do
  local pair = member .. ':' .. ARGV[i]
  addPatient(KEYS[7], 'ph', pair)
  addPatient(KEYS[8], 'pd', pair)
end

-- Patient accesses and unexplained ones, for the group's usual share of unexplained accesses.
if #ARGV >= 12 then
  redis.call('HINCRBY', stats, 'pa', #ARGV - 11)
  redis.call('HINCRBY', stats, 'ux', tonumber(ARGV[11]))
end

local before = tonumber(redis.call('HGET', networks, ARGV[3]) or 0)
if before > 0 or redis.call('HLEN', networks) < networkCap then
  redis.call('HINCRBY', networks, ARGV[3], 1)
end

if (tonumber(redis.call('HGET', stats, 'min') or 0) or 0) > decayAt then
  local fields = redis.call('HGETALL', stats)
  for i = 1, #fields, 2 do
    redis.call('HSET', stats, fields[i], math.floor(tonumber(fields[i + 1]) / 2))
  end
  local buckets = redis.call('HGETALL', week)
  for i = 1, #buckets, 2 do
    redis.call('HSET', week, buckets[i], math.floor(tonumber(buckets[i + 1]) / 2))
  end
end

redis.call('PEXPIRE', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[5], ARGV[5])
redis.call('PEXPIRE', KEYS[7], ARGV[5])
redis.call('PEXPIRE', KEYS[6], ARGV[6])
redis.call('PEXPIRE', KEYS[8], ARGV[6])
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ARGV[7])
end

local s = redis.call('HMGET', stats, 'req', 'min', 'hr', 'day', 'ph', 'pd', 'wt', 'pa', 'ux')
local counters = {}
for i = 1, 9 do
  counters[i] = tonumber(s[i] or 0) or 0
end

return { counters, redis.call('HGETALL', week), redis.call('HGETALL', networks), tonumber(redis.call('HGET', KEYS[5], 'm') or 0) }
