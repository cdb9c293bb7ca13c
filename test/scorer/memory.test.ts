import t from 'tap';

import { RedisBaselineStore } from '../../scorer/baselines/redis-store.ts';
import { FeatureExtractor } from '../../scorer/features/extractor.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { panelCareSource } from '../../scorer/training/replay-format.ts';
import { simulateTraffic } from '../../scorer/training/simulator.ts';
import { connectTestRedis, deleteKeysUnder, keysUnder, testPrefix } from './helpers.ts';

/** Upper bound on Redis memory per active user after a simulated day. */
const BOUND_BYTES = 64 * 1024;

t.test('memory per active user after a simulated day', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('memory');
  const store = new RedisBaselineStore(redis, { prefix });
  t.teardown(async () => {
    await store.close();
    await deleteKeysUnder(redis, prefix);
    redis.disconnect();
  });
  const { records, panel } = simulateTraffic({ seed: 11, days: 1, scale: 0.5 });
  const pseudonymizer = new PatientPseudonymizer(Buffer.alloc(32, 4));
  const extractor = new FeatureExtractor({ store, pseudonymizer, careSource: panelCareSource(panel, pseudonymizer) });

  for (const record of records) {
    await extractor.extract(record.input);
    await store.observeResponse({ ...record.input, status: record.status, bytes: record.bytes });
  }
  await store.settle();

  const bytesByUser = new Map<string, number>();
  for (const key of await keysUnder(redis, prefix)) {
    const tag = /\{(u:[0-9a-f]+)\}/.exec(key)?.[1];
    if (tag === undefined) continue;
    bytesByUser.set(tag, (bytesByUser.get(tag) ?? 0) + Number(await redis.memory('USAGE', key)));
  }
  const sizes = [...bytesByUser.values()];
  const mean = sizes.reduce((sum, size) => sum + size, 0) / sizes.length;
  const max = Math.max(...sizes);
  t.comment(`${records.length} requests, ${sizes.length} active users: mean ${Math.round(mean)} bytes, max ${max} bytes per user (MEMORY USAGE)`);

  t.ok(sizes.length >= 10, `${sizes.length} active users measured`);
  t.ok(max < BOUND_BYTES, `max ${max} bytes per user is below ${BOUND_BYTES}`);
});
