import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import t from 'tap';

import type { KeyValueStore } from '../../proxy/state/key-value-store.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { deleteKeys, REDIS_URL } from './helpers.ts';

const prefix = `wgtest:identity:${randomBytes(6).toString('hex')}:`;
const implementations: [string, () => Promise<KeyValueStore>][] = [
  ['memory', async () => new MemoryKeyValueStore()],
  ['redis', () => RedisKeyValueStore.connect({ url: REDIS_URL, keyPrefix: prefix })],
];
t.teardown(() => deleteKeys(prefix));

for (const [name, open] of implementations) {
  t.test(`${name} store`, async (t) => {
    const store = await open();
    t.teardown(() => store.close());

    t.test('get returns what set stored', async (t) => {
      await store.set('a', 'one', 60_000);
      t.equal(await store.get('a'), 'one');
      await store.set('a', 'two', 60_000);
      t.equal(await store.get('a'), 'two');
      t.equal(await store.get('missing'), null);
    });

    t.test('take is single use', async (t) => {
      await store.set('b', 'once', 60_000);
      const results = await Promise.all([store.take('b'), store.take('b'), store.take('b')]);
      t.same(results.filter((r) => r !== null), ['once']);
      t.equal(await store.get('b'), null);
    });

    t.test('del removes the key', async (t) => {
      await store.set('c', 'x', 60_000);
      await store.del('c');
      t.equal(await store.get('c'), null);
      await store.del('c');
    });

    t.test('keys expire after ttl', async (t) => {
      await store.set('d', 'short', 30);
      await sleep(80);
      t.equal(await store.get('d'), null);
      t.equal(await store.take('d'), null);
      t.equal(await store.touch('d', 60_000), false);
    });

    t.test('touch extends and never creates', async (t) => {
      await store.set('e', 'x', 400);
      t.equal(await store.touch('e', 60_000), true);
      await sleep(500);
      t.equal(await store.get('e'), 'x');
      t.equal(await store.touch('never-set', 60_000), false);
      t.equal(await store.get('never-set'), null);
    });

    t.test('invalid ttl is rejected', async (t) => {
      for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await t.rejects(store.set('f', 'x', ttl), RangeError, String(ttl));
      }
    });
  });
}

t.test('memory store honours an injected clock', async (t) => {
  let now = 1_000_000;
  const store = new MemoryKeyValueStore({ now: () => now });
  t.teardown(() => store.close());
  await store.set('k', 'v', 1000);
  now += 999;
  t.equal(await store.get('k'), 'v');
  now += 1;
  t.equal(await store.get('k'), null);
});

t.test('redis store reports unavailable and bad options', async (t) => {
  await t.rejects(RedisKeyValueStore.connect({ url: 'redis://127.0.0.1:1', keyPrefix: prefix, redis: { connectTimeout: 500, retryStrategy: () => null } }), { code: 'WG_STATE_UNAVAILABLE', status: 503 });
  await t.rejects(RedisKeyValueStore.connect({ url: 'http://127.0.0.1:6379', keyPrefix: prefix }), { code: 'WG_STATE_INVALID_OPTION' });
  await t.rejects(RedisKeyValueStore.connect({ url: REDIS_URL, keyPrefix: '' }), { code: 'WG_STATE_INVALID_OPTION' });
});
