import { createHash } from 'node:crypto';
import t from 'tap';
import type { Redis } from 'ioredis';

import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { RedisBaselineStore } from '../../scorer/baselines/redis-store.ts';
import { createScorer } from '../../scorer/scorer.ts';
import { connectTestRedis, deleteKeysUnder, keysUnder, MONDAY, request, testPrefix } from './helpers.ts';

const MODEL_PATH = new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname;
const HOUR = 3_600_000;

/** Records the name and first key of every command the client sends. */
function recordCommands(redis: Redis): { name: string; key: string }[] {
  const sent: { name: string; key: string }[] = [];
  const original = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: { name: string; args: unknown[] }) => {
    sent.push({ name: command.name, key: command.args.map(String).find((arg) => arg.includes('{')) ?? '' });
    return original(command as never);
  }) as typeof redis.sendCommand;

  return sent;
}

t.test('one script call per score on the request path', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('roundtrip');
  const store = new RedisBaselineStore(redis, { prefix });
  const scorer = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 5) });
  t.teardown(async () => {
    await scorer.close();
    await store.close();
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });
  await scorer.score(request({ path: '/fhir/Patient/warm-up' }));
  await store.settle();

  const sent = recordCommands(redis);
  await scorer.score(request({ time: MONDAY + 9 * HOUR + 60_000, path: '/fhir/Patient/p-1' }));
  const userCalls = sent.filter(({ key }) => key.includes('{u:'));
  await store.settle();
  const peerCalls = sent.filter(({ key }) => key.includes('{g:'));

  t.equal(userCalls.length, 1, `one call on the user's keys: ${JSON.stringify(userCalls)}`);
  t.match(userCalls[0]!.name, /^evalsha$|^eval$/);
  t.equal(peerCalls.length, 1, 'one peer update after the request');
  t.equal(sent.length, 2, `no other command: ${JSON.stringify(sent)}`);
});

t.test('score does not wait for the peer update', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('peerasync');
  const store = new RedisBaselineStore(redis, { prefix });
  const scorer = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 5) });
  let release: () => void = () => {};
  const original = (redis as unknown as Record<string, (args: string[]) => Promise<unknown>>).wardgateObservePeer!.bind(redis);
  (redis as unknown as Record<string, unknown>).wardgateObservePeer = async (args: string[]) => {
    await new Promise<void>((resolve) => (release = resolve));
    return original(args);
  };
  t.teardown(async () => {
    release();
    await scorer.close();
    await store.close();
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });

  const result = await scorer.score(request({ path: '/fhir/Patient/p-2' }));

  t.ok(result.risk >= 0 && result.risk <= 1, 'scored while the peer update is still pending');
});

t.test('observeResponse updates response features off the path', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('response');
  const stores = [new MemoryBaselineStore(), new RedisBaselineStore(redis, { prefix })];
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });

  const results = [];
  for (const store of stores) {
    const first = await store.observe(request());
    for (const status of [200, 404, 403, 404]) {
      await store.observeResponse!({ user: 'dr.house@hospital.test', groups: ['staff'], time: MONDAY + 9 * HOUR + 10, routeId: 'ehr-fhir', status, bytes: 1000 });
    }
    const second = await store.observe(request({ time: MONDAY + 9 * HOUR + 20 }));
    results.push({ first: first.user, second: second.user });
  }

  for (const { first, second } of results) {
    t.equal(first.deniedHour, 0);
    t.equal(second.responsesHour, 4);
    t.equal(second.deniedHour, 3, '403 and 404 count as denied');
    t.equal(second.bytesHour, 4000);
    t.equal(second.responseBytes, 4000);
    t.equal(second.responseHours, 1);
  }
  t.same(results[1], results[0], 'memory and Redis agree');
});

t.test('scorer observeResponse never throws', async (t) => {
  const errors: unknown[] = [];
  const failing = {
    observe: new MemoryBaselineStore().observe,
    observeResponse: async () => {
      throw new Error('redis down');
    },
    close: async () => {},
  };
  const scorer = await createScorer({ store: failing, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 5), onResponseError: (error) => errors.push(error) });
  t.teardown(() => scorer.close());

  t.type(scorer.observeResponse, 'function', 'the behavioural scorer implements observeResponse');
  t.doesNotThrow(() => scorer.observeResponse!({ user: 'u', groups: [], time: MONDAY, routeId: 'r', status: 200, bytes: 1 }));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(errors.length, 1, 'the error reaches onResponseError');
  t.match((errors[0] as Error).message, /redis down/);
});

t.test('distinct patients stay bounded in memory', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('bound');
  const store = new RedisBaselineStore(redis, { prefix });
  t.teardown(async () => {
    await store.close();
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });

  let last;
  for (let batch = 0; batch < 60; batch += 1) {
    // Hex digests like real pseudonyms, so the history's 16-character prefixes are distinct too.
    const patients = Array.from({ length: 50 }, (_, i) => createHash('sha256').update(`patient-${batch * 50 + i}`).digest('hex').slice(0, 32));
    last = await store.observe(request({ time: MONDAY + 9 * HOUR + batch * 1000, routeId: `route-${batch}` }), { patients, unexplained: patients.map(() => true) });
  }
  await store.settle();
  const userKeys = (await keysUnder(redis, prefix)).filter((key) => key.includes('{u:'));
  let bytes = 0;
  for (const key of userKeys) bytes += Number(await redis.memory('USAGE', key));

  t.equal(last!.user.hourPatients, 1000, '3000 patients saturate at the cap of 1000');
  const history = userKeys.find((key) => key.endsWith(':pk'))!;
  const routes = userKeys.find((key) => key.endsWith(':rp'))!;
  t.equal(await redis.zcard(history), 1024, 'the patient history saturates at its cap of 1024');
  t.equal(await redis.hlen(routes), 61, '60 routes and the total, under the cap of 64 fields');
  t.equal(last!.user.newPatients, 50, 'patients beyond the history cap stay new');
  t.ok(bytes < 320 * 1024, `user keys use ${bytes} bytes after 3000 distinct patients in an hour`);
  for (const key of userKeys) t.ok((await redis.pttl(key)) > 0, `${key} expires`);
});

t.test('foreign key types fail with a coded error', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('wrongtype');
  const errors: unknown[] = [];
  const store = new RedisBaselineStore(redis, { prefix, onBackgroundError: (error) => errors.push(error) });
  t.teardown(async () => {
    await store.close();
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });
  await store.observe(request());
  await store.settle();
  const keys = await keysUnder(redis, prefix);
  const userStats = keys.find((key) => key.includes('{u:') && key.endsWith('}:s'))!;
  const peerStats = keys.find((key) => key.includes('{g:') && key.endsWith('}:s'))!;
  await redis.set(userStats, 'not a hash');
  await redis.set(peerStats, 'not a hash');

  await t.rejects(store.observe(request({ time: MONDAY + 9 * HOUR + 5000 })), { code: 'WG_SCORER_STORE_UNAVAILABLE', status: 503 });
  await redis.del(userStats);
  await store.observe(request({ time: MONDAY + 9 * HOUR + 6000 }));
  await store.settle();
  t.equal(errors.length, 1, 'the failed peer update reaches onBackgroundError');
  t.match(errors[0], { code: 'WG_SCORER_STORE_UNAVAILABLE' });
});
