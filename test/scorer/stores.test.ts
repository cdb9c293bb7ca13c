import t from 'tap';

import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { RedisBaselineStore } from '../../scorer/baselines/redis-store.ts';
import type { BaselineStore, RawBaseline } from '../../scorer/baselines/store.ts';
import type { ScoreInput } from '../../scorer/types.ts';
import { MONDAY, connectTestRedis, deleteKeysUnder, keysUnder, request, testPrefix } from './helpers.ts';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Events and the patient pseudonyms they carry, replayed against both stores in this order. */
const EVENTS: [ScoreInput, string[]][] = [
  [request({ time: MONDAY + 9 * HOUR }), []],
  [request({ time: MONDAY + 9 * HOUR + 5_000, path: '/fhir/Patient/a' }), ['pa']],
  [request({ time: MONDAY + 9 * HOUR + 9_000, path: '/fhir/Observation?patient=a' }), ['pa']],
  [request({ time: MONDAY + 9 * HOUR + MINUTE }), ['pb', 'pc']],
  [request({ time: MONDAY + 10 * HOUR, ip: '10.20.2.9' }), ['pb']],
  [request({ time: MONDAY + 10 * HOUR + 1, user: 'nurse.joy@hospital.test', groups: ['team-w1', 'staff', 'physicians'] }), ['pd']],
  [request({ time: MONDAY + 10 * HOUR + 2, user: 'nurse.joy@hospital.test', groups: ['staff'], ip: '2001:db8:1:2::5' }), []],
  [request({ time: MONDAY + DAY + 2 * HOUR, ip: '203.0.113.7', userAgent: 'curl/8.5.0' }), ['pe']],
  [request({ time: MONDAY + DAY + 2 * HOUR + 1_000, ip: '203.0.113.99', userAgent: 'curl/8.5.0' }), ['pf', 'pf']],
  [request({ time: MONDAY + 8 * DAY + 9 * HOUR, ip: '::ffff:10.20.1.200' }), ['pa']],
];

async function replay(store: BaselineStore): Promise<RawBaseline[]> {
  const results: RawBaseline[] = [];
  for (const [input, patients] of EVENTS) {
    results.push(await store.observe(input, { patients }));
    // The peer update runs off the request path; wait for it so both stores see the same order.
    await store.settle?.();
  }

  return results;
}

t.test('memory and Redis stores agree on an event table', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('stores');
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });

  const fromMemory = await replay(new MemoryBaselineStore());
  const fromRedis = await replay(new RedisBaselineStore(redis, { prefix }));

  t.same(fromRedis, fromMemory);
  t.equal(fromMemory[0]!.user.requests, 1);
  t.equal(fromMemory[2]!.user.minuteRequests, 3);
  t.equal(fromMemory[2]!.user.hourPatients, 1);
  t.equal(fromMemory[3]!.user.hourPatients, 3);
  t.equal(fromMemory[3]!.user.activeMinutes, 2);
  t.equal(fromMemory[4]!.user.networkRequests, 0, 'second /24 is new for the user');
  t.equal(fromMemory[4]!.user.networkCount, 2);
  t.equal(fromMemory[4]!.user.dayPatients, 3);
  t.equal(fromMemory[4]!.user.hourPatients, 1);
  t.equal(fromMemory[5]!.peer.networkRequests, 4, 'the same groups in another order share one peer baseline');
  t.equal(fromMemory[5]!.user.historyDays, 1);
  t.equal(fromMemory[6]!.user.networkRequests, 0);
  t.equal(fromMemory[7]!.user.deviceRequests, 0);
  t.equal(fromMemory[7]!.user.historyDays, 2);
  t.equal(fromMemory[8]!.user.networkRequests, 1, 'both addresses are in 203.0.113.0/24');
  t.equal(fromMemory[8]!.user.hourPatients, 2, 'a duplicated pseudonym counts once');
  t.equal(fromMemory[9]!.user.networkRequests, 4, 'IPv4-mapped IPv6 maps to the IPv4 /24');
  t.equal(fromMemory[9]!.user.historyDays, 3);
});

/** Requests of one user across routes and days, each with its not-admitted count and unexplained flags. */
const HISTORY_EVENTS: [ScoreInput, string[], number, boolean[]][] = [
  [request({ time: MONDAY + 9 * HOUR, routeId: 'billing' }), ['pa', 'pb'], 2, [true, false]],
  [request({ time: MONDAY + 9 * HOUR + 1_000, routeId: 'billing' }), ['pa'], 1, [true]],
  [request({ time: MONDAY + 9 * HOUR + 2_000, routeId: 'ehr' }), ['pc'], 0, [true]],
  [request({ time: MONDAY + 9 * HOUR + 3_000, routeId: 'ehr' }), [], 0, []],
  [request({ time: MONDAY + 10 * HOUR, routeId: 'billing' }), ['pc', 'pd'], 1, [false, true]],
  [request({ time: MONDAY + 8 * DAY, routeId: 'billing' }), ['pb'], 1, [true]],
  // On day 20, pa, pc and pd (last seen on day 0) have left the 14-day history; pb (day 8) has not.
  [request({ time: MONDAY + 20 * DAY, routeId: 'billing' }), ['pa', 'pb', 'pc'], 0, [true, true, false]],
];

t.test('memory and Redis stores agree on patient history, routes and census counts', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('stores-history');
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });
  const run = async (store: BaselineStore) => {
    const results: RawBaseline[] = [];
    for (const [input, patients, notAdmitted, unexplained] of HISTORY_EVENTS) {
      results.push(await store.observe(input, { patients, notAdmitted, unexplained }));
      // The upstream responds to every request, so its patients are shown before the next one.
      await store.showPatients!(input.user, patients, input.time);
      await store.settle?.();
    }
    return results;
  };

  const memoryResults = await run(new MemoryBaselineStore());
  const redisResults = await run(new RedisBaselineStore(redis, { prefix }));
  const fromMemory = memoryResults.map((result) => result.user);

  t.same(redisResults, memoryResults, 'user and peer baselines agree');
  t.same(memoryResults.map((result) => [result.peer.patientAccesses, result.peer.unexplained]), [[0, 0], [2, 1], [3, 1], [4, 2], [4, 2], [6, 3], [7, 3]], 'the peer counts before each request');
  t.same(fromMemory.map((user) => user.patientAccessesHour), [2, 3, 4, 4, 2, 1, 3]);
  t.same(fromMemory.map((user) => user.newPatients), [2, 0, 1, 0, 1, 0, 2]);
  t.same(fromMemory.map((user) => user.newPatientsHour), [2, 2, 3, 3, 1, 0, 2]);
  t.same(fromMemory.map((user) => user.routePatientRequests), [0, 1, 0, 0, 2, 3, 4], 'earlier patient requests on the same route');
  t.same(fromMemory.map((user) => user.routePatientTotal), [0, 1, 2, 0, 3, 4, 5], 'a request without patients reads no route counters');
  t.same(fromMemory.map((user) => user.patientAccesses), [2, 3, 4, 4, 6, 7, 10]);
  t.same(fromMemory.map((user) => user.notAdmittedAccesses), [2, 3, 3, 3, 4, 5, 5]);
  t.equal(fromMemory[6]!.newPatientsTotal, 6);
  t.same(fromMemory.map((user) => user.unexplainedPatients), [1, 0, 1, 0, 1, 0, 1], 'new and unexplained: a known patient is explained by history');
  t.same(fromMemory.map((user) => user.unexplainedHour), [1, 1, 2, 2, 1, 0, 1]);
  t.equal(fromMemory[6]!.unexplainedTotal, 4);
});

/**
 * Observations, withheld marks and shown patients of the patient history, replayed against both
 * stores in this order. An observation's patients are shown right after it unless `pending` is set.
 */
type HistoryStep =
  | { observe: ScoreInput; patients: string[]; pending?: true }
  | { forget: string; patients: string[] }
  | { show: ScoreInput; patients: string[] };

const HOUSE = 'dr.house@hospital.test';
const JOY = 'nurse.joy@hospital.test';
// Eighteen UTF-8 bytes each: observe.lua keeps the first 16, which the two share.
const WIDE_X = 'üüüüüüüüx';
const WIDE_Y = 'üüüüüüüüy';
// Pseudonyms of 32 hex digits that share their first 16, so they share one history member.
const LONG_A = `0123456789abcdef${'a'.repeat(16)}`;
const LONG_B = `0123456789abcdef${'b'.repeat(16)}`;

const FORGET_STEPS: HistoryStep[] = [
  { forget: HOUSE, patients: ['pa'] },
  { observe: request({ time: MONDAY + 9 * HOUR }), patients: ['pa', 'pb'] },
  { forget: HOUSE, patients: ['pa', 'pz'] },
  { forget: JOY, patients: ['pb'] },
  { forget: HOUSE, patients: [] },
  { observe: request({ time: MONDAY + 9 * HOUR + 1_000 }), patients: ['pa', 'pb'] },
  { observe: request({ time: MONDAY + 9 * HOUR + 2_000 }), patients: [WIDE_X] },
  { observe: request({ time: MONDAY + 9 * HOUR + 3_000 }), patients: [WIDE_Y] },
  { forget: HOUSE, patients: [WIDE_Y, 'pa', 'pb'] },
  { observe: request({ time: MONDAY + 9 * HOUR + 4_000 }), patients: [WIDE_X, 'pb'] },
  { observe: request({ time: MONDAY + 9 * HOUR + 5_000 }), patients: [LONG_A] },
  { forget: HOUSE, patients: [LONG_B] },
  { observe: request({ time: MONDAY + 9 * HOUR + 6_000 }), patients: [LONG_A, 'pb'] },
  { observe: request({ time: MONDAY + 10 * HOUR }), patients: ['pa'] },
];

t.test('memory and Redis stores agree on forgetting patients', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('stores-forget');
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });
  const run = async (store: BaselineStore) => {
    const results: RawBaseline[] = [];
    for (const step of FORGET_STEPS) {
      results.push(...(await runHistoryStep(store, step)));
    }
    return results;
  };

  const memoryResults = await run(new MemoryBaselineStore());
  const redisResults = await run(new RedisBaselineStore(redis, { prefix }));
  const fromMemory = memoryResults.map((result) => result.user);

  t.same(redisResults, memoryResults, 'user and peer baselines agree');
  t.same(fromMemory.map((user) => user.newPatients), [2, 1, 1, 0, 2, 1, 2, 1], 'a withheld patient stays new');
  t.same(fromMemory.map((user) => user.unexplainedPatients), [2, 1, 1, 0, 2, 1, 2, 1], 'and unexplained');
  t.same(fromMemory.map((user) => user.newPatientsHour), [2, 2, 3, 3, 3, 4, 4, 1], 'an hour counts a withheld patient once');
  t.same(fromMemory.map((user) => user.unexplainedHour), [2, 2, 3, 3, 3, 4, 4, 1], 'as unexplained too');
  t.same(fromMemory.map((user) => user.newPatientsTotal), [2, 2, 3, 3, 3, 4, 4, 4], 'the long-term count only once');
  t.same(fromMemory.map((user) => user.patientAccesses), [2, 4, 5, 6, 8, 9, 11, 12]);
});

async function runHistoryStep(store: BaselineStore, step: HistoryStep): Promise<RawBaseline[]> {
  const results: RawBaseline[] = [];
  if ('forget' in step) {
    await store.forgetPatients!(step.forget, step.patients);
  } else if ('show' in step) {
    await store.showPatients!(step.show.user, step.patients, step.show.time);
  } else {
    results.push(await store.observe(step.observe, { patients: step.patients, unexplained: step.patients.map(() => true) }));
    if (step.pending === undefined) await store.showPatients!(step.observe.user, step.patients, step.observe.time);
  }
  await store.settle?.();
  return results;
}

const PENDING_STEPS: HistoryStep[] = [
  // pa is requested twice before any response shows them, as by a stepped-up request and its retry.
  { observe: request({ time: MONDAY + 9 * HOUR }), patients: ['pa'], pending: true },
  { observe: request({ time: MONDAY + 9 * HOUR + 1_000 }), patients: ['pa', 'pb'], pending: true },
  { show: request({ time: MONDAY + 9 * HOUR + 2_000 }), patients: ['pb', 'pz'] },
  { observe: request({ time: MONDAY + 9 * HOUR + 3_000 }), patients: ['pa', 'pb'], pending: true },
  { observe: request({ time: MONDAY + 10 * HOUR }), patients: ['pa'], pending: true },
  // pc is withheld while pending; a later response does not show them.
  { observe: request({ time: MONDAY + 10 * HOUR + 1_000 }), patients: ['pc'], pending: true },
  { forget: HOUSE, patients: ['pc'] },
  { show: request({ time: MONDAY + 10 * HOUR + 2_000 }), patients: ['pc', 'pa'] },
  { observe: request({ time: MONDAY + 10 * HOUR + 3_000 }), patients: ['pa', 'pc'], pending: true },
  // A response for another user shows nothing to this one; long pseudonyms share one member.
  { observe: request({ time: MONDAY + 10 * HOUR + 4_000 }), patients: [LONG_A, WIDE_X], pending: true },
  { show: request({ user: JOY, time: MONDAY + 10 * HOUR + 5_000 }), patients: [LONG_A] },
  { show: request({ time: MONDAY + 10 * HOUR + 6_000 }), patients: [LONG_B, WIDE_X] },
  { observe: request({ time: MONDAY + 10 * HOUR + 7_000 }), patients: [LONG_A, WIDE_Y] },
  { observe: request({ time: MONDAY + 10 * HOUR + 8_000 }), patients: ['pe'], pending: true },
  // On the next day the pending and withheld marks have gone; the shown patient pa is still known.
  { observe: request({ time: MONDAY + DAY }), patients: ['pc', 'pa', 'pe'] },
];

t.test('memory and Redis stores agree on pending patients', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('stores-pending');
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });
  const run = async (store: BaselineStore) => {
    const results: RawBaseline[] = [];
    for (const step of PENDING_STEPS) results.push(...(await runHistoryStep(store, step)));
    return results;
  };

  const memoryResults = await run(new MemoryBaselineStore());
  const redisResults = await run(new RedisBaselineStore(redis, { prefix }));
  const fromMemory = memoryResults.map((result) => result.user);

  t.same(redisResults, memoryResults, 'user and peer baselines agree');
  t.same(fromMemory.map((user) => user.newPatients), [1, 2, 1, 1, 1, 1, 2, 0, 1, 2], 'a pending patient stays new until a response shows them');
  t.same(fromMemory.map((user) => user.unexplainedPatients), [1, 2, 1, 1, 1, 1, 2, 0, 1, 2], 'and unexplained');
  t.same(fromMemory.map((user) => user.newPatientsHour), [1, 2, 2, 1, 2, 2, 4, 4, 5, 2], 'an hour counts a pending patient once');
  t.same(fromMemory.map((user) => user.newPatientsTotal), [1, 2, 2, 2, 3, 3, 5, 5, 6, 8], 'the long-term counters count a patient once per day');
});

t.test('forgetting patients marks them withheld and creates nothing', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('stores-forget-mark');
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });
  const redisStore = new RedisBaselineStore(redis, { prefix });
  const memoryStore = new MemoryBaselineStore();

  await redisStore.forgetPatients(JOY, ['pa']);
  await memoryStore.forgetPatients(JOY, ['pa']);
  await redisStore.showPatients(JOY, ['pa'], MONDAY);
  await memoryStore.showPatients(JOY, ['pa'], MONDAY);
  t.same(await keysUnder(redis, prefix), [], 'forgetting or showing creates no key');
  t.equal(memoryStore.size, 0, 'nor does the memory store');

  for (const store of [redisStore, memoryStore]) {
    await store.observe(request({ user: JOY }), { patients: ['pa'] });
    await store.settle();
  }
  const [historyKey] = (await keysUnder(redis, prefix)).filter((key) => key.endsWith(':pk'));
  t.ok(historyKey, 'the observation created the history');
  t.same(await redis.zrange(historyKey!, 0, -1, 'WITHSCORES'), ['pa', '-2'], 'a requested patient is pending');
  const memoryKeys = memoryStore.size;

  await redisStore.forgetPatients(JOY, ['pa', 'pq']);
  await memoryStore.forgetPatients(JOY, ['pa', 'pq']);

  t.same(await redis.zrange(historyKey!, 0, -1, 'WITHSCORES'), ['pa', '-1'], 'the patient is marked, and an unknown one is not added');
  t.equal(memoryStore.size, memoryKeys, 'the memory store keeps its keys too');
});

t.test('Redis keys are hash-tagged and expire', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('ttl');
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });

  await replay(new RedisBaselineStore(redis, { prefix }));
  const keys = await keysUnder(redis, prefix);

  t.ok(keys.length >= 20, `expected the table to create keys, found ${keys.length}`);
  for (const key of keys) {
    t.match(key.slice(prefix.length), /^\{[ug]:[0-9a-f]{16}\}:[a-z]+(:\d+)?$/, `${key} is hash-tagged`);
    const ttl = await redis.pttl(key);
    t.ok(ttl > 0 && ttl <= 30 * DAY, `${key} has a TTL (${ttl} ms)`);
  }
});

t.test('Redis holds no clear patient id', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('privacy');
  const { createScorer } = await import('../../scorer/scorer.ts');
  const store = new RedisBaselineStore(redis, { prefix });
  const scorer = await createScorer({
    store,
    modelPath: new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname,
    patientKey: Buffer.alloc(32, 9),
  });
  t.teardown(async () => {
    await scorer.close();
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });

  const patientIds = ['clear-patient-4711', 'clear-patient-0815'];
  await scorer.score(request({ path: `/fhir/Patient/${patientIds[0]}` }));
  await scorer.score(request({ path: `/fhir/Observation?patient=Patient/${patientIds[1]}` }));

  const keys = await keysUnder(redis, prefix);
  let dump = keys.join('\n');
  for (const key of keys) {
    const type = await redis.type(key);
    if (type === 'hash') dump += JSON.stringify(await redis.hgetall(key));
    if (type === 'set') dump += JSON.stringify(await redis.smembers(key));
  }

  t.ok(keys.some((key) => key.includes(':ph:')), 'patient sets exist');
  for (const id of patientIds) {
    t.notOk(dump.includes(id), `${id} is not stored in clear`);
    t.notOk(dump.includes(id.slice('clear-'.length)), `${id} is not stored without its prefix either`);
  }
});

t.test('dead Redis fails fast with a coded error', async (t) => {
  const { Redis } = await import('ioredis');
  const { BASELINE_REDIS_OPTIONS } = await import('../../scorer/baselines/redis-client.ts');
  const redis = new Redis('redis://127.0.0.1:1', { ...BASELINE_REDIS_OPTIONS, lazyConnect: true, retryStrategy: () => null });
  t.teardown(() => redis.disconnect());

  const store = new RedisBaselineStore(redis, { prefix: testPrefix('dead') });

  await t.rejects(store.observe(request()), { code: 'WG_SCORER_STORE_UNAVAILABLE', status: 503 });
  await t.rejects(store.forgetPatients('dr.house@hospital.test', ['pa']), { code: 'WG_SCORER_STORE_UNAVAILABLE', status: 503 });
  await store.settle();
});

t.test('store option and input errors are coded', async (t) => {
  const redis = await connectTestRedis();
  t.teardown(() => redis.disconnect());

  t.throws(() => new RedisBaselineStore(redis, { prefix: 'bad{prefix}' }), { code: 'WG_SCORER_INVALID_OPTION' });
  t.throws(() => new RedisBaselineStore(redis, { prefix: '' }), { code: 'WG_SCORER_INVALID_OPTION' });
  await t.rejects(new MemoryBaselineStore().observe(request({ ip: 'not-an-ip' })), { code: 'WG_SCORER_INVALID_INPUT', status: 400 });
  await t.rejects(new MemoryBaselineStore().observe(request({ time: Number.NaN })), { code: 'WG_SCORER_INVALID_INPUT' });
  await t.rejects(new MemoryBaselineStore().observe(request({ time: 1.5 })), { code: 'WG_SCORER_INVALID_INPUT' });
});
