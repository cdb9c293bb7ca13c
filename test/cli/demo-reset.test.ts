import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import t from 'tap';
import { resetDemoState } from '../../demo/demo-stack.ts';
import { REDIS_URL } from '../e2e/support.ts';

const redis = new Redis(REDIS_URL);
t.teardown(() => redis.disconnect());

t.test('reset deletes only the demo prefix', async (t) => {
  const prefix = `wgtest:demo-reset:${randomBytes(4).toString('hex')}:`;
  const neighbour = `${prefix.slice(0, -1)}x:`;
  t.teardown(async () => {
    await redis.del(`${neighbour}kept`);
  });
  for (let index = 0; index < 1200; index++) await redis.set(`${prefix}bl:{u${index}}:s`, '1');
  await redis.xadd(`${prefix}review`, '*', 'entry', '{}');
  await redis.set(`${neighbour}kept`, '1');

  t.equal(await resetDemoState(REDIS_URL, prefix), 1201, 'every key of the prefix, in several SCAN pages');
  t.same(await redis.keys(`${prefix}*`), []);
  t.equal(await redis.get(`${neighbour}kept`), '1', 'a longer prefix that starts the same is left alone');
});

t.test('reset refuses a prefix that is not the demo one', async (t) => {
  await t.rejects(resetDemoState(REDIS_URL, 'wg:'), /invalid prefix "wg:": only keys under wg:demo: or wgtest: are deleted/);
});

t.test('reset reports an unreachable Redis', async (t) => {
  await t.rejects(resetDemoState('redis://127.0.0.1:1', 'wgtest:demo-reset:none:'), /ECONNREFUSED/);
});

t.test('reset refuses a URL that sets a key prefix', async (t) => {
  const prefix = `wgtest:demo-reset:${randomBytes(4).toString('hex')}:`;
  t.teardown(async () => {
    await redis.del(`other:${prefix}kept`);
  });
  await redis.set(`other:${prefix}kept`, '1');

  await t.rejects(resetDemoState(`${REDIS_URL}?keyPrefix=other:`, prefix), /invalid Redis URL: it sets keyPrefix "other:"; remove the keyPrefix query parameter from REDIS_URL/);
  t.equal(await redis.get(`other:${prefix}kept`), '1', 'no key under the other prefix was deleted');
});
