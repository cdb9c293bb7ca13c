import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import t from 'tap';

import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { ReviewQueue } from '../../proxy/review/queue.ts';
import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { createRedisClient, redisConnected, type RedisTarget } from '../../scorer/baselines/redis-client.ts';
import { RedisBaselineStore } from '../../scorer/baselines/redis-store.ts';
import type { BaselineStore } from '../../scorer/baselines/store.ts';
import { FeatureExtractor } from '../../scorer/features/extractor.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { simulationPatientKey } from '../../scorer/training/pipeline.ts';
import { panelCareSource } from '../../scorer/training/replay-format.ts';
import { simulateTraffic, type Simulation } from '../../scorer/training/simulator.ts';
import { Browser, rawRequest, signIn, startTestStack } from '../e2e/support.ts';
import { moveSlot, slotsInUse, startRedisCluster, type RedisProcesses } from './servers.ts';
import { waitUntil } from '../wait.ts';

// A real Redis Cluster of three masters on this machine: every slot range has its own process,
// so a command or script whose keys span slots fails here as it would in production.
let cluster: RedisProcesses;
let target: RedisTarget;

t.before(async () => {
  cluster = await startRedisCluster(3);
  target = { kind: 'cluster', nodes: cluster.urls };
});
t.teardown(() => cluster.stop());

/** Runs the simulation's records through feature extraction on `store`, as training does, and returns the rows. */
async function featureRows(simulation: Simulation, store: BaselineStore): Promise<number[][]> {
  const pseudonymizer = new PatientPseudonymizer(simulationPatientKey(3));
  const extractor = new FeatureExtractor({ store, pseudonymizer, careSource: panelCareSource(simulation.panel, pseudonymizer) });
  const rows: number[][] = [];
  for (const record of simulation.records) {
    rows.push([...(await extractor.extract(record.input))]);
    await store.showPatients!(record.input.user, extractor.patientPseudonyms(record.input), record.input.time);
    await store.observeResponse!({ user: record.input.user, groups: record.input.groups, time: record.input.time, routeId: record.input.routeId, status: record.status, bytes: record.bytes });
    await store.settle?.();
  }
  return rows;
}

t.test('baselines on a Cluster match the memory store', async (t) => {
  const simulation = simulateTraffic({ seed: 3, days: 2, scale: 0.25 });
  const records = { ...simulation, records: simulation.records.slice(0, 1500) };
  const redis = await createRedisClient(target);
  t.teardown(() => redis.quit());

  const fromMemory = await featureRows(records, new MemoryBaselineStore());
  const fromCluster = await featureRows(records, new RedisBaselineStore(redis, { prefix: 'wgtest:cluster:bl:' }));

  const users = new Set(records.records.map((record) => record.input.user));
  t.ok(users.size >= 5, `the records come from ${users.size} users, whose keys fall in several slots`);
  t.equal(fromCluster.length, records.records.length);
  const firstDifference = fromCluster.findIndex((row, index) => JSON.stringify(row) !== JSON.stringify(fromMemory[index]));
  t.equal(firstDifference, -1, 'every feature row is the same as with the memory store');
});

t.test('baselines keep working while their slots move', async (t) => {
  const simulation = simulateTraffic({ seed: 3, days: 2, scale: 0.25 });
  // The request path requests auto-pipelining, which batches commands of several slots and
  // cannot follow a slot that moves, so a Cluster client must not use it. The long command
  // timeout keeps a loaded machine's slow replies apart from failures of the slot moves.
  const redis = await createRedisClient(target, { enableAutoPipelining: true, commandTimeout: 10_000 });
  t.teardown(() => redis.quit());
  const prefix = 'wgtest:cluster:moving:';
  const store = new RedisBaselineStore(redis, { prefix });
  const pseudonymizer = new PatientPseudonymizer(simulationPatientKey(3));
  const extractor = new FeatureExtractor({ store, pseudonymizer, careSource: panelCareSource(simulation.panel, pseudonymizer) });

  let completed = 0;
  const failures: string[] = [];
  let moving = true;
  const worker = async (offset: number) => {
    for (let index = offset; moving; index = (index + 8) % simulation.records.length) {
      const { input, status, bytes } = simulation.records[index]!;
      try {
        await extractor.extract(input);
        await store.showPatients!(input.user, extractor.patientPseudonyms(input), input.time);
        await store.observeResponse!({ user: input.user, groups: input.groups, time: input.time, routeId: input.routeId, status, bytes });
        completed++;
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  };
  const workers = Array.from({ length: 8 }, (_, offset) => worker(offset));
  t.teardown(() => {
    moving = false;
  });

  // Once the users' keys exist, every slot that contains some moves to the next master, twice over.
  while (completed < 500 && failures.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  const { ports, owners } = await slotsInUse(cluster.urls, prefix);
  for (let round = 1; round <= 2; round++) {
    for (const [slot, owner] of owners) {
      const to = ports[(ports.indexOf(owner) + round) % ports.length]!;
      const from = ports[(ports.indexOf(owner) + round - 1) % ports.length]!;
      await moveSlot(slot, from, to, ports);
    }
  }
  const completedDuringMoves = completed;
  moving = false;
  await Promise.all(workers);

  t.ok(owners.size >= 5, `keys in ${owners.size} slots moved`);
  t.ok(completedDuringMoves > 500, `${completedDuringMoves} records were scored`);
  // A batch that ioredis cannot follow fails with this message, and with auto-pipelining it
  // failed about 100 operations of this test. A command can still run out of retries while a
  // slot moves on a loaded machine, so a few such failures in ten thousand are accepted.
  t.same(failures.filter((message) => /should belong to the same slot/.test(message)), [], 'no batch fails because a slot moved');
  t.ok(failures.length <= completed / 5_000, `at most 1 operation in 5,000 failed (${failures.length} of ${completed + failures.length}: ${failures.slice(0, 2).join(' | ')})`);
});

t.test('key-value store on a Cluster', async (t) => {
  const store = await RedisKeyValueStore.connect({ target, keyPrefix: 'wgtest:cluster:kv:' });
  t.teardown(() => store.close());
  const keys = Array.from({ length: 12 }, (_, index) => `session:${index}`);

  for (const key of keys.slice(0, 6)) await store.set(key, `value of ${key}`, 60_000);
  t.same(await store.exists(keys), keys.map((_, index) => index < 6), 'EXISTS over keys in different slots');
  t.equal(await store.get('session:3'), 'value of session:3');
  t.equal(await store.setIfAbsent('session:3', 'other', 60_000), false);
  t.equal(await store.take('session:3'), 'value of session:3');
  t.equal(await store.get('session:3'), null);
  await store.sortedSetAdd('index:user', 'a', 1, 2, 60_000);
  await store.sortedSetAdd('index:user', 'b', 2, 2, 60_000);
  await store.sortedSetAdd('index:user', 'c', 3, 2, 60_000);
  t.same(await store.sortedSetMembers('index:user'), ['b', 'c'], 'the sorted set keeps its newest members');

  const received: string[] = [];
  const unsubscribe = await store.subscribe('events', { onMessage: (message) => received.push(message) });
  const publisher = await RedisKeyValueStore.connect({ target, keyPrefix: 'wgtest:cluster:kv:' });
  t.teardown(() => publisher.close());
  await waitUntil(async () => {
    await publisher.publish('events', 'session ended');
    return received.length > 0;
  }, 30_000, 50);
  await unsubscribe();
  t.equal(received[0], 'session ended', 'a message published on one connection reaches the subscriber');
});

t.test('review queue on a Cluster', async (t) => {
  const redis = await createRedisClient(target);
  t.teardown(() => redis.quit());
  const queue = new ReviewQueue(redis, { prefix: 'wgtest:cluster:', maxLength: 100 });
  const entry = { kind: 'decision', time: 1, trace_id: 'a'.repeat(32), user: 'dr-001', groups: [], route: 'ehr', method: 'GET', path: '/fhir/Patient/~x', patients: [], rule: 'r', action: 'step_up', reasons: [], risk: 0.7, top_features: [] } as const;

  const id = await queue.add(entry);
  const pending = await queue.pending('cli-test');
  const { label } = await queue.label(id, 'benign', 'ward round', 'analyst', 2, 'cli-test');

  t.same(pending.map((stored) => stored.id), [id]);
  t.equal(label.label, 'benign');
  t.same(await queue.pending('cli-test'), [], 'a labelled entry leaves the pending list');
  t.equal(await queue.removeLabel(label), true, 'the compare-and-delete script runs on a Cluster');
  t.equal((await queue.get(id)).label, undefined, 'the label is removed');

  const limitPrefix = `wgtest:cluster:limit:${process.pid}-${Date.now()}:`;
  const limited = new ReviewQueue(redis, { prefix: limitPrefix, maxLength: 100, maxEntriesPerUserHour: 2 });
  for (let i = 0; i < 4; i++) limited.enqueue({ ...entry, time: Date.now(), trace_id: String(i).repeat(32) });
  t.ok(await waitUntil(() => limited.limitedEntries === 2 && limited.failures === 0), 'the per-user hour counter runs on a Cluster');
  t.equal(await redis.xlen(limited.streamKey), 2);
  await redis.del(limited.streamKey);
  const hour = Math.floor(Date.now() / 3_600_000);
  for (const key of [hour - 1, hour, hour + 1].map((value) => `${limitPrefix}review:count:{${createHash('sha256').update('dr-001').digest('hex').slice(0, 32)}}:${value}`)) await redis.del(key, `${key}:marked`);
});

t.test('the demo stack runs on a Cluster', async (t) => {
  const stack = await startTestStack({ redisTopology: { cluster: cluster.urls } });
  t.teardown(() => stack.close());
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;

  const read = await rawRequest(stack, '/fhir/Patient/p-0001', { headers: { cookie, accept: 'application/fhir+json' } });
  const health = JSON.parse((await rawRequest(stack, '/.wardgate/health')).body) as { store?: string };

  t.equal(read.status, 200, 'the session from sign-in is found and the read is scored');
  t.match(health, { store: 'redis' });
  const masters = await Promise.all(cluster.urls.map(async (url) => {
    const node = new Redis(url);
    try {
      return (await node.keys(`${stack.keyPrefix}*`)).length;
    } finally {
      node.disconnect();
    }
  }));
  t.ok(masters.filter((count) => count > 0).length >= 2, `the stack's keys are spread over the masters (${masters.join(', ')})`);
});

// Last, because it stops the Cluster.
t.test('a Cluster client reports itself disconnected when its masters die', async (t) => {
  const redis = await createRedisClient(target);
  t.teardown(() => redis.disconnect());
  t.equal(redisConnected(redis), true, 'connected while the Cluster runs');

  await cluster.stop();
  const disconnected = await waitUntil(async () => {
    await redis.get('wgtest:cluster:any').catch(() => undefined);
    return !redisConnected(redis);
  }, 30_000, 100);
  t.equal(disconnected, true, 'disconnected once the masters are gone');
});
