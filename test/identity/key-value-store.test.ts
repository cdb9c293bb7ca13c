import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';
import t from 'tap';

import type { KeyValueStore } from '../../proxy/state/key-value-store.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { deleteKeys, REDIS_URL } from './helpers.ts';
import { waitUntil } from '../wait.ts';

const prefix = `wgtest:identity:${randomBytes(6).toString('hex')}:`;
const implementations: [string, () => Promise<KeyValueStore>][] = [
  ['memory', async () => new MemoryKeyValueStore()],
  ['redis', () => RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix })],
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

    t.test('getAndTouch reads, extends and never creates', async (t) => {
      await store.set('read-touch', 'value', 400);
      t.equal(await store.getAndTouch('read-touch', 60_000), 'value');
      await sleep(500);
      t.equal(await store.get('read-touch'), 'value', 'the expiry was reset');
      t.equal(await store.getAndTouch('never-set-g', 60_000), null);
      t.equal(await store.get('never-set-g'), null, 'a missing key is not created');
      await t.rejects(store.getAndTouch('read-touch', 0), RangeError, 'invalid ttl');
    });

    t.test('invalid ttl is rejected', async (t) => {
      for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await t.rejects(store.set('f', 'x', ttl), RangeError, String(ttl));
        await t.rejects(store.setIfAbsent('f', 'x', ttl), RangeError, `setIfAbsent ${ttl}`);
        await t.rejects(store.sortedSetAdd('f', 'x', 1, 10, ttl), RangeError, `sortedSetAdd ${ttl}`);
      }
      await t.rejects(store.sortedSetAdd('f', 'x', 1, 0, 60_000), RangeError, 'maxMembers 0');
    });

    t.test('setIfAbsent stores only once', async (t) => {
      const results = await Promise.all(Array.from({ length: 8 }, (_, index) => store.setIfAbsent('g', `writer ${index}`, 60_000)));
      t.equal(results.filter(Boolean).length, 1, 'exactly one concurrent writer stores');
      t.equal(await store.get('g'), `writer ${results.indexOf(true)}`, 'the value is the one writer that was told so');
      t.equal(await store.setIfAbsent('g', 'later', 60_000), false);
      t.equal(await store.get('g'), `writer ${results.indexOf(true)}`, 'a refused write changes nothing');

      await store.set('h', 'short', 30);
      await sleep(80);
      t.equal(await store.setIfAbsent('h', 'after expiry', 60_000), true, 'an expired key counts as absent');
      t.equal(await store.get('h'), 'after expiry');
    });

    t.test('setIfPresent never creates', async (t) => {
      t.equal(await store.setIfPresent('p', 'x', 60_000), false);
      t.equal(await store.get('p'), null, 'a missing key stays missing');
      await store.set('p', 'old', 400);
      t.equal(await store.setIfPresent('p', 'new', 60_000), true);
      t.equal(await store.get('p'), 'new');
      await sleep(500);
      t.equal(await store.get('p'), 'new', 'the expiry is replaced too');
      await store.del('p');
      t.equal(await store.setIfPresent('p', 'after delete', 60_000), false);
      t.equal(await store.get('p'), null, 'a deleted key is not recreated');
    });

    t.test('exists reports each key', async (t) => {
      await store.set('i1', 'x', 60_000);
      await store.sortedSetAdd('i2', 'm', 1, 10, 60_000);
      t.same(await store.exists(['i1', 'i-missing', 'i2']), [true, false, true]);
      t.same(await store.exists([]), []);
    });

    t.test('sorted set keeps the highest scores', async (t) => {
      await store.sortedSetAdd('j', 'c', 3, 3, 60_000);
      await store.sortedSetAdd('j', 'a', 1, 3, 60_000);
      await store.sortedSetAdd('j', 'b', 2, 3, 60_000);
      t.same(await store.sortedSetMembers('j'), ['a', 'b', 'c'], 'members come lowest score first');
      await store.sortedSetAdd('j', 'd', 4, 3, 60_000);
      t.same(await store.sortedSetMembers('j'), ['b', 'c', 'd'], 'the lowest score leaves past the bound');
      await store.sortedSetAdd('j', 'b', 5, 3, 60_000);
      t.same(await store.sortedSetMembers('j'), ['c', 'd', 'b'], 'adding a member again updates its score');
      t.same(await store.sortedSetMembers('j-missing'), []);
    });

    t.test('sorted set add is atomic', async (t) => {
      const members = Array.from({ length: 40 }, (_, index) => `member-${index}`);
      await Promise.all(members.map((member, index) => store.sortedSetAdd('k', member, index, 100, 60_000)));
      t.same(await store.sortedSetMembers('k'), members);
    });

    t.test('sorted set remove leaves the rest', async (t) => {
      await store.sortedSetAdd('l', 'x', 1, 10, 60_000);
      await store.sortedSetAdd('l', 'y', 2, 10, 60_000);
      await store.sortedSetRemove('l', ['x', 'not-a-member']);
      t.same(await store.sortedSetMembers('l'), ['y']);
      await store.sortedSetRemove('l', []);
      await store.sortedSetRemove('l-missing', ['x']);
      await store.sortedSetRemove('l', ['y']);
      t.same(await store.exists(['l']), [false], 'an empty sorted set is deleted');
    });

    t.test('sorted set expires after ttl', async (t) => {
      await store.sortedSetAdd('m', 'x', 1, 10, 30);
      await sleep(80);
      t.same(await store.sortedSetMembers('m'), []);
    });

    t.test('wrong type is rejected', async (t) => {
      await store.set('n', 'a string', 60_000);
      await t.rejects(store.sortedSetAdd('n', 'x', 1, 10, 60_000));
      await store.sortedSetAdd('o', 'x', 1, 10, 60_000);
      await t.rejects(store.get('o'));
    });

    t.test('publish reaches each subscriber', async (t) => {
      const first: string[] = [];
      const second: string[] = [];
      const both = waitForMessages(first, 2);
      const unsubscribeFirst = await store.subscribe('channel-a', { onMessage: (message) => first.push(message) });
      const unsubscribeSecond = await store.subscribe('channel-a', { onMessage: (message) => second.push(message) });
      const other: string[] = [];
      const unsubscribeOther = await store.subscribe('channel-b', { onMessage: (message) => other.push(message) });

      await store.publish('channel-a', 'one');
      await store.publish('channel-a', 'two');
      await both;
      t.same(first, ['one', 'two']);
      t.same(second, ['one', 'two']);

      await unsubscribeFirst();
      await store.publish('channel-a', 'three');
      await store.publish('channel-b', 'marker');
      await waitForMessages(other, 1);
      await waitForMessages(second, 3);
      t.same(first, ['one', 'two'], 'an unsubscribed listener gets nothing more');
      t.same(second, ['one', 'two', 'three'], 'the other listener still gets messages');
      t.same(other, ['marker'], 'a listener of another channel gets only that channel');
      await unsubscribeSecond();
      await unsubscribeOther();
    });
  });
}

/** Resolves once `received` contains `count` messages; fails the test after 30 seconds. */
async function waitForMessages(received: readonly string[], count: number): Promise<void> {
  if (!(await waitUntil(() => received.length >= count))) {
    throw new Error(`expected ${count} messages, received ${received.length}: ${JSON.stringify(received)}`);
  }
}

t.test('redis channels are prefixed and shared', async (t) => {
  const first = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix });
  const second = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix });
  const raw = new Redis(REDIS_URL);
  t.teardown(async () => {
    await first.close();
    await second.close();
    raw.disconnect();
  });
  const received: string[] = [];
  const rawReceived: string[] = [];
  await first.subscribe('events', { onMessage: (message) => received.push(message) });
  await raw.subscribe(`${prefix}events`);
  raw.on('message', (channel: string, message: string) => rawReceived.push(`${channel} ${message}`));

  await second.publish('events', 'from the second store');
  await waitForMessages(received, 1);
  await waitForMessages(rawReceived, 1);

  t.same(received, ['from the second store'], 'another connection with the same prefix receives it');
  t.same(rawReceived, [`${prefix}events from the second store`], 'the channel name carries the key prefix');
});

t.test('redis subscription survives a reconnect', async (t) => {
  const connectionName = `wgtest-${randomBytes(6).toString('hex')}`;
  const subscriberStore = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix, redis: { connectionName } });
  const publisherStore = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix });
  const admin = new Redis(REDIS_URL);
  t.teardown(async () => {
    await subscriberStore.close();
    await publisherStore.close();
    admin.disconnect();
  });
  const received: string[] = [];
  let resubscribed = 0;
  await subscriberStore.subscribe('reconnect', { onMessage: (message) => received.push(message), onResubscribe: () => { resubscribed += 1; } });

  // The subscriber connection is the one of this store that has a subscription (sub=1).
  const clients = String(await admin.client('LIST')).split('\n').filter((line) => line.includes(` name=${connectionName} `) && / sub=1 /.test(line));
  t.equal(clients.length, 1, 'one subscriber connection');
  const id = /(?:^| )id=(\d+)/.exec(clients[0])![1];
  await admin.client('KILL', 'ID', id);
  await waitUntil(() => resubscribed > 0);
  t.equal(resubscribed, 1, 'the listener is told that the subscription was restored');

  await publisherStore.publish('reconnect', 'after the reconnect');
  await waitForMessages(received, 1);
  t.same(received, ['after the reconnect']);
});

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
  await t.rejects(RedisKeyValueStore.connect({ target: 'redis://127.0.0.1:1', keyPrefix: prefix, redis: { connectTimeout: 500, retryStrategy: () => null } }), { code: 'WG_STATE_UNAVAILABLE', status: 503 });
  await t.rejects(RedisKeyValueStore.connect({ target: 'http://127.0.0.1:6379', keyPrefix: prefix }), { code: 'WG_STATE_INVALID_OPTION' });
  await t.rejects(RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: '' }), { code: 'WG_STATE_INVALID_OPTION' });
});
