import { Redis } from 'ioredis';
import t from 'tap';

import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { createRedisClient, type RedisTarget } from '../../scorer/baselines/redis-client.ts';
import { RedisBaselineStore } from '../../scorer/baselines/redis-store.ts';
import { request } from '../scorer/helpers.ts';
import { Browser, rawRequest, signIn, startTestStack } from '../e2e/support.ts';
import { startRedisSentinel, type RedisSentinelProcesses } from './servers.ts';

// A real master and a Sentinel that monitors it: Wardgate gets the master's address from the
// Sentinel and then sends its commands to the master.
const MASTER = 'wgtest';
let sentinel: RedisSentinelProcesses;
let target: RedisTarget;

t.before(async () => {
  sentinel = await startRedisSentinel(MASTER);
  target = { kind: 'sentinel', nodes: sentinel.urls, master: MASTER };
});
t.teardown(() => sentinel.stop());

/** Counts the keys under `prefix` on the master itself, without the Sentinel. */
async function keysOnMaster(prefix: string): Promise<number> {
  const master = new Redis({ port: sentinel.masterPort, host: '127.0.0.1' });
  try {
    return (await master.keys(`${prefix}*`)).length;
  } finally {
    master.disconnect();
  }
}

t.test('baselines and key-value store reach the master through Sentinel', async (t) => {
  const redis = await createRedisClient(target);
  t.teardown(() => redis.quit());
  const baselines = new RedisBaselineStore(redis, { prefix: 'wgtest:sentinel:bl:' });
  const store = await RedisKeyValueStore.connect({ target, keyPrefix: 'wgtest:sentinel:kv:' });
  t.teardown(() => store.close());

  const first = await baselines.observe(request({ path: '/fhir/Patient/a' }), { patients: ['pa'] });
  const second = await baselines.observe(request({ path: '/fhir/Patient/a', time: request().time + 1_000 }), { patients: ['pa'] });
  await store.set('session:1', 'value', 60_000);

  t.equal(first.user.requests, 1);
  t.equal(second.user.requests, 2, 'the second request finds the first one counted');
  t.equal(await store.get('session:1'), 'value');
  t.ok((await keysOnMaster('wgtest:sentinel:bl:')) > 0, 'the baselines are on the master');
  t.equal(await keysOnMaster('wgtest:sentinel:kv:'), 1, 'and so is the session');
});

t.test('an unknown master name fails with the target in the message', async (t) => {
  await t.rejects(createRedisClient({ kind: 'sentinel', nodes: sentinel.urls, master: 'no-such-master' }), {
    code: 'WG_SCORER_STORE_UNAVAILABLE',
    message: /^Redis master "no-such-master" through Sentinel at 127\.0\.0\.1:\d+ is not reachable/,
  });
});

t.test('the demo stack runs through Sentinel', async (t) => {
  const stack = await startTestStack({ redisTopology: { sentinel: { nodes: sentinel.urls, master: MASTER } } });
  t.teardown(() => stack.close());
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;

  const read = await rawRequest(stack, '/fhir/Patient/p-0002', { headers: { cookie, accept: 'application/fhir+json' } });

  t.equal(read.status, 200, 'the session from sign-in is found and the read is scored');
  t.ok((await keysOnMaster(stack.keyPrefix)) > 0, "the stack's keys are on the master");
});

t.test('the client reconnects after the Sentinel was down', async (t) => {
  const redis = await createRedisClient(target);
  t.teardown(() => redis.disconnect());
  await redis.set('wgtest:sentinel:blip', 'before');

  // The Sentinel goes down, and then the client's connection to the master drops, as in a
  // network blip. The client can only find the master again once the Sentinel is back.
  await sentinel.stopSentinel();
  const master = new Redis({ port: sentinel.masterPort, host: '127.0.0.1' });
  t.teardown(() => master.disconnect());
  await master.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  await sentinel.startSentinel();

  let value: string | null = null;
  for (let attempt = 0; attempt < 100 && value === null; attempt++) {
    value = await redis.get('wgtest:sentinel:blip').catch(() => null);
    if (value === null) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.equal(value, 'before', 'the client reads through the master again');
  await master.del('wgtest:sentinel:blip');
});
