-- Adds one request to one user's baseline and returns the user's counters. All keys carry the
-- user's hash tag, so this is one script call in one Redis Cluster slot per request.
-- memory-store.ts implements the same steps in the same order; change both together.
--
-- KEYS: 1 stats hash, 2 hour-of-week hash, 3 network hash, 4 device hash,
--       5 minute hash, 6 hour hash, 7 day hash, 8 hour patient set, 9 day patient set,
--       10 hour response hash (written by respond.lua), 11 route hash (patient requests per
--       route), 12 patient history sorted set (pseudonym prefix -> last UTC day shown, -2
--       while pending until a response shows the patient, -1 while withheld after a block)
-- ARGV: 1 hour of week, 2 network hash, 3 device hash,
--       4 minute TTL ms, 5 hour TTL ms, 6 day TTL ms, 7 long TTL ms,
--       8 network cap, 9 device cap, 10 patient cap, 11 decay threshold in active minutes,
--       12 bulk export (0 or 1), 13 patients outside care, 14 flagged patients,
--       15 route hash, 16 route cap, 17 history cap, 18 history window in days, 19 UTC day,
--       20 patients without an encounter in progress, 21 one character per patient, '1' when
--       neither the care set nor the census explains the access, 22.. patient pseudonyms
-- Reply: the integers of SUBJECT_FIELDS in store.ts, in that order.
local stats, week, networks, devices = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local hourOfWeek = ARGV[1]
local networkCap, deviceCap = tonumber(ARGV[8]), tonumber(ARGV[9])
local patientCap, decayAt = tonumber(ARGV[10]), tonumber(ARGV[11])

local minuteRequests = redis.call('HINCRBY', KEYS[5], 'n', 1)
local hourRequests = redis.call('HINCRBY', KEYS[6], 'n', 1)
local dayRequests = redis.call('HINCRBY', KEYS[7], 'n', 1)
local exportsDay = redis.call('HINCRBY', KEYS[7], 'x', tonumber(ARGV[12]))
local outsideCareHour = redis.call('HINCRBY', KEYS[6], 'o', tonumber(ARGV[13]))
local flaggedHour = redis.call('HINCRBY', KEYS[6], 'f', tonumber(ARGV[14]))

redis.call('HINCRBY', stats, 'req', 1)
local hourMinutes = tonumber(redis.call('HGET', KEYS[6], 'm') or 0)
if minuteRequests == 1 then
  hourMinutes = redis.call('HINCRBY', KEYS[6], 'm', 1)
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

-- Distinct patients per window. The set saturates at the cap, so its memory stays bounded.
local function addPatient(set, field, patient)
  if redis.call('SISMEMBER', set, patient) == 1 then
    return
  end
  if redis.call('SCARD', set) >= patientCap then
    return
  end
  redis.call('SADD', set, patient)
  redis.call('HINCRBY', stats, field, 1)
end

-- Whether this hour already counted each patient, for pending and withheld patients below.
local inHour = {}
for i = 22, #ARGV do
  inHour[i] = redis.call('SISMEMBER', KEYS[8], ARGV[i]) == 1
end
for i = 22, #ARGV do
  addPatient(KEYS[8], 'ph', ARGV[i])
  addPatient(KEYS[9], 'pd', ARGV[i])
end

-- Patient history: which patients the user opened in the last days. Entries older than the
-- window go once a day; the set saturates at the cap, so a patient beyond it stays "new".
local history, today = KEYS[12], tonumber(ARGV[19])
if dayRequests == 1 then
  redis.call('ZREMRANGEBYSCORE', history, '-inf', today - tonumber(ARGV[18]))
end
-- A patient first requested enters the history as pending (-2) and becomes known only when a
-- response shows them (show.lua, showPatients in store.ts). A score of -1 marks a patient whom a
-- blocked request named (forgetPatients in store.ts). Until a response shows a pending patient,
-- or until a withheld patient's mark expires with the other old entries on a later UTC day,
-- every request finds the patient new, and unexplained unless care or the census explains them.
-- The hour's counters count such a patient once per hour, and the long-term counters not again.
local newPatients, unexplained = 0, 0
local firstNew, firstUnexplained = 0, 0
local hourNew, hourUnexplained = 0, 0
for i = 22, #ARGV do
  local member = string.sub(ARGV[i], 1, 16)
  -- A patient new to the user whom neither care nor the census explains.
  local unexplainedHere = string.sub(ARGV[21], i - 21, i - 21) == '1' and 1 or 0
  local seen = redis.call('ZSCORE', history, member)
  if seen and tonumber(seen) >= 0 then
    redis.call('ZADD', history, today, member)
  elseif seen then
    newPatients = newPatients + 1
    unexplained = unexplained + unexplainedHere
    if not inHour[i] then
      hourNew = hourNew + 1
      hourUnexplained = hourUnexplained + unexplainedHere
    end
  else
    newPatients = newPatients + 1
    unexplained = unexplained + unexplainedHere
    firstNew = firstNew + 1
    firstUnexplained = firstUnexplained + unexplainedHere
    if redis.call('ZCARD', history) < tonumber(ARGV[17]) then
      redis.call('ZADD', history, -2, member)
    end
  end
end
-- Patient accesses, and those to patients not in the hospital, for the user's usual share.
local patientAccessesHour = tonumber(redis.call('HGET', KEYS[6], 'pa') or 0)
if #ARGV >= 22 then
  redis.call('HINCRBY', stats, 'pa', #ARGV - 21)
  redis.call('HINCRBY', stats, 'na', tonumber(ARGV[20]))
  patientAccessesHour = redis.call('HINCRBY', KEYS[6], 'pa', #ARGV - 21)
end
local newPatientsHour = redis.call('HINCRBY', KEYS[6], 'np', firstNew + hourNew)
if firstNew > 0 then
  redis.call('HINCRBY', stats, 'np', firstNew)
end
local unexplainedHour = redis.call('HINCRBY', KEYS[6], 'ux', firstUnexplained + hourUnexplained)
if firstUnexplained > 0 then
  redis.call('HINCRBY', stats, 'ux', firstUnexplained)
end

-- Counts requests per network or device; returns the count before this request.
local function remember(hash, value, cap)
  local before = tonumber(redis.call('HGET', hash, value) or 0)
  if before > 0 or redis.call('HLEN', hash) < cap then
    redis.call('HINCRBY', hash, value, 1)
  end
  return before
end

local networkRequests = remember(networks, ARGV[2], networkCap)
local deviceRequests = remember(devices, ARGV[3], deviceCap)
-- Requests naming patients, per route and in total ('_total'): a billing clerk who reads
-- claims and then opens clinical records takes a path their work rarely takes.
local routePatientRequests, routePatientTotal = 0, 0
if #ARGV >= 22 then
  routePatientTotal = tonumber(redis.call('HGET', KEYS[11], '_total') or 0)
  redis.call('HINCRBY', KEYS[11], '_total', 1)
  routePatientRequests = remember(KEYS[11], ARGV[15], tonumber(ARGV[16]))
end

-- Integer halving keeps the ratios and lets old behaviour fade. 'hist' is never halved.
if (tonumber(redis.call('HGET', stats, 'min') or 0) or 0) > decayAt then
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

redis.call('PEXPIRE', KEYS[5], ARGV[4])
redis.call('PEXPIRE', KEYS[6], ARGV[5])
redis.call('PEXPIRE', KEYS[8], ARGV[5])
redis.call('PEXPIRE', KEYS[7], ARGV[6])
redis.call('PEXPIRE', KEYS[9], ARGV[6])
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[7])
end
redis.call('PEXPIRE', KEYS[11], ARGV[7])
redis.call('PEXPIRE', KEYS[12], ARGV[7])

local s = redis.call('HMGET', stats, 'req', 'min', 'hr', 'day', 'ph', 'pd', 'wt', 'hist', 'rb', 'rh', 'np', 'pa', 'na', 'ux')
local r = redis.call('HMGET', KEYS[10], 'n', 'denied', 'bytes')
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
  exportsDay, outsideCareHour, flaggedHour, hourMinutes,
  int(r[1]), int(r[2]), int(r[3]), int(s[9]), int(s[10]),
  routePatientRequests, routePatientTotal, newPatients, newPatientsHour, int(s[11]), int(s[12]), int(s[13]),
  unexplained, unexplainedHour, int(s[14]), patientAccessesHour,
}
