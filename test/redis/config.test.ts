import t from 'tap';

import { parseConfig, redisTargetOf } from '../../proxy/config/config.ts';
import { newRedisClient } from '../../scorer/baselines/redis-client.ts';
import { CONFIG_ENV as ENV, MINIMAL_CONFIG as BASE } from '../scorer/helpers.ts';

const FILE = '/etc/wardgate/wardgate.yaml';

t.test('redis targets: server, Cluster, Sentinel', async (t) => {
  const server = parseConfig(`${BASE}redis: { url: "redis://10.0.0.5:6379/2" }\n`, FILE, ENV);
  const cluster = parseConfig(`${BASE}redis:\n  cluster: [redis://10.0.0.5:6379, redis://10.0.0.6:6379]\n`, FILE, ENV);
  const sentinel = parseConfig(`${BASE}redis:\n  sentinel: { nodes: [rediss://10.0.0.7:26379], master: wardgate }\n  key_prefix: "wg:"\n`, FILE, ENV);

  t.same(redisTargetOf(server.redis), { kind: 'server', url: 'redis://10.0.0.5:6379/2' });
  t.same(redisTargetOf(cluster.redis), { kind: 'cluster', nodes: ['redis://10.0.0.5:6379', 'redis://10.0.0.6:6379'] });
  t.same(redisTargetOf(sentinel.redis), { kind: 'sentinel', nodes: ['rediss://10.0.0.7:26379'], master: 'wardgate' });
  t.same(redisTargetOf(parseConfig(BASE, FILE, { ...ENV, REDIS_URL: 'redis://10.0.0.9:6379' }).redis), { kind: 'server', url: 'redis://10.0.0.9:6379' }, 'REDIS_URL is the default');
});

/** Each invalid redis section and the message line it gets, after `file:line:column: `. */
const invalid: [string, string][] = [
  ['redis: { url: "redis://a:6379", cluster: ["redis://b:6379"] }', 'redis: set one of url, cluster and sentinel, got url and cluster'],
  ['redis: { cluster: [] }', 'redis.cluster: expected at least one redis:// or rediss:// URL, got an empty list'],
  ['redis: { cluster: "redis://b:6379" }', 'redis.cluster: expected a list, got "redis://b:6379"'],
  ['redis: { cluster: ["http://b:6379"] }', 'redis.cluster[0]: expected a redis:// or rediss:// URL with a host, got a value with http:'],
  ['redis: { cluster: ["redis://b:6379", "rediss://c:6379"] }', 'redis.cluster: expected the same scheme, redis:// or rediss://, for every node'],
  ['redis: { sentinel: { nodes: ["redis://s:26379"] } }', 'redis.sentinel.master: missing; set the master name that the Sentinels monitor, such as "mymaster"'],
  ['redis: { sentinel: { nodes: ["redis://s:26379"], master: "a b" } }', 'redis.sentinel.master: expected the master name that the Sentinels monitor (letters, digits, ".", "_" or "-"), got "a b"'],
  ['redis: { sentinel: { master: wardgate } }', 'redis.sentinel.nodes: missing; list the redis:// or rediss:// URLs of the nodes, such as ["redis://10.0.0.5:6379"]'],
  ['redis: { sentinel: { nodes: ["redis://s:26379"], master: m, quorum: 2 } }', 'redis.sentinel.quorum: unknown option (allowed: nodes, master)'],
  ['redis: { url: "redis:/user:pw@h:1" }', 'redis.url: expected a redis:// or rediss:// URL with a host, or "memory", got a value with redis:'],
  ['redis: { url: "http://h:6379" }', 'redis.url: expected a redis:// or rediss:// URL with a host, or "memory", got a value with http:'],
  ['redis: { cluster: ["redis:user:pw@h"] }', 'redis.cluster[0]: expected a redis:// or rediss:// URL with a host, got a value with redis:'],
];

for (const [section, message] of invalid) {
  t.test(`config rejects ${section}`, async (t) => {
    t.throws(() => parseConfig(`${BASE}${section}\n`, FILE, ENV), { code: 'WG_CONFIG_INVALID', message: new RegExp(`^${FILE}:\\d+:\\d+: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) });
  });
}

t.test('a password in a URL stays out of the message', async (t) => {
  for (const section of ['redis: { cluster: ["http://user:hunter2@b:6379"] }', 'redis: { url: "redis:/user:hunter2@h:1" }', 'redis: { sentinel: { nodes: ["redis:user:hunter2@h"], master: m } }']) {
    t.throws(() => parseConfig(`${BASE}${section}\n`, FILE, ENV), { code: 'WG_CONFIG_INVALID', message: /^(?!.*hunter2)/s }, section);
  }
});

t.test('client checks of Cluster and Sentinel URLs', async (t) => {
  t.throws(() => newRedisClient({ kind: 'cluster', nodes: ['redis://a:6379/2'] }, { lazyConnect: true }), { code: 'WG_SCORER_INVALID_OPTION', message: /a Redis Cluster has database 0 only/ });
  t.throws(() => newRedisClient({ kind: 'cluster', nodes: ['redis://u:p@a:6379', 'redis://u:q@b:6379'] }, { lazyConnect: true }), { message: /the same user name and password in every address/ });
  t.throws(() => newRedisClient({ kind: 'sentinel', nodes: ['redis://s:26379/0x10'], master: 'm' }, { lazyConnect: true }), { message: /the same decimal database number/ });
  t.throws(() => newRedisClient({ kind: 'sentinel', nodes: ['redis://s:26379/2', 'redis://t:26379/3'], master: 'm' }, { lazyConnect: true }), { message: /the same decimal database number/ });
  const sentinel = newRedisClient({ kind: 'sentinel', nodes: ['redis://s:26379/3'], master: 'm' }, { lazyConnect: true });
  t.equal((sentinel.options as { db?: number }).db, 3, 'the database number of a Sentinel URL selects the database');
  sentinel.disconnect();
});
