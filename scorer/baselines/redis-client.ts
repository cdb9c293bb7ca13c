import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

import { ScorerError } from '../errors.ts';

/**
 * ioredis options for the baseline store. Requests must not wait for Redis: without an
 * offline queue and with one attempt per command, a dead Redis fails the request within
 * `commandTimeout`, and the proxy applies the route's fail mode while ioredis reconnects. On a
 * Cluster, up to three retries on other nodes add about 150 ms to that ({@link newRedisClient}).
 */
export const BASELINE_REDIS_OPTIONS: Readonly<RedisOptions> = Object.freeze({
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 250,
  connectTimeout: 2_000,
  retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 2_000),
});

/** A client of one Redis server, a master found through Sentinel, or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * Location of Redis. Every address is a `redis://` or `rediss://` URL, and a user name and
 * password in the URL authenticate. For Sentinel, the credentials and TLS of the Sentinel URLs
 * apply to the master too.
 */
export type RedisTarget =
  | { readonly kind: 'server'; readonly url: string }
  | { readonly kind: 'cluster'; readonly nodes: readonly string[] }
  | { readonly kind: 'sentinel'; readonly nodes: readonly string[]; readonly master: string };

/** Returns the target for a bare URL, the form of `REDIS_URL` and `--redis`. */
export function redisTarget(target: string | RedisTarget): RedisTarget {
  return typeof target === 'string' ? { kind: 'server', url: target } : target;
}

/** Describes the target for messages: host and port of each address, never a password. */
export function describeRedisTarget(target: string | RedisTarget): string {
  const resolved = redisTarget(target);
  const hosts = (resolved.kind === 'server' ? [resolved.url] : resolved.nodes).map((url) => URL.parse(url)?.host ?? '(invalid URL)');
  if (resolved.kind === 'server') return `Redis at ${hosts[0]}`;
  if (resolved.kind === 'cluster') return `Redis Cluster at ${hosts.join(', ')}`;
  return `Redis master "${resolved.master}" through Sentinel at ${hosts.join(', ')}`;
}

/**
 * Creates an ioredis client for `target` with `options`. Like ioredis, it connects at once
 * unless the options set `lazyConnect`. For a Cluster, the per-connection options go to every node, and `retryStrategy` and
 * `enableOfflineQueue` apply to the cluster as a whole.
 *
 * @throws {ScorerError} `WG_SCORER_INVALID_OPTION` for an address that is not a `redis:` or
 *   `rediss:` URL, for a Cluster or Sentinel without addresses, or for mixed schemes.
 */
export function newRedisClient(target: string | RedisTarget, options: RedisOptions = {}): RedisClient {
  const resolved = redisTarget(target);
  if (resolved.kind === 'server') {
    parseRedisUrl(resolved.url, 'redis.url');
    return new Redis(resolved.url, options);
  }

  const option = `redis.${resolved.kind}`;
  if (resolved.nodes.length === 0) throw invalidOption(option, 'expected at least one redis:// or rediss:// address, received none');
  const nodes = resolved.nodes.map((url, index) => parseRedisUrl(url, `${option} address ${index + 1}`));
  const tls = nodes[0]!.protocol === 'rediss:';
  if (nodes.some((node) => (node.protocol === 'rediss:') !== tls)) throw invalidOption(option, 'expected the same scheme, redis:// or rediss://, for every address');
  const addresses = nodes.map((node) => ({ host: node.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(node.port || (resolved.kind === 'sentinel' ? 26379 : 6379)) }));
  const { username, password } = credentials(nodes[0]!);
  if (nodes.some((node) => node.username !== nodes[0]!.username || node.password !== nodes[0]!.password)) {
    throw invalidOption(option, 'expected the same user name and password in every address, because one set of credentials is used for all nodes');
  }
  const databasePaths = new Set(nodes.map((node) => node.pathname.replace(/^\//, '')));
  const databasePath = nodes[0]!.pathname.replace(/^\//, '');
  if (databasePaths.size > 1 || !/^\d*$/.test(databasePath)) {
    throw invalidOption(option, 'expected the same decimal database number, or none, after every address, such as redis://10.0.0.5:26379/2');
  }
  const database = databasePath === '' ? undefined : Number(databasePath);
  // A preset name such as "RedisCloudFixed" is not for self-hosted Cluster or Sentinel nodes.
  const tlsSettings = typeof options.tls === 'object' ? options.tls : {};
  const tlsOptions = tls ? { tls: tlsSettings } : {};

  if (resolved.kind === 'sentinel') {
    // Before the first connection, three rounds in which no Sentinel names the master fail the
    // attempt, so start-up reports it. After it, ioredis would end the client for good on such a
    // failure, so it keeps asking the Sentinels, at most every 2 seconds.
    let connected = false;
    const client = new Redis({
      sentinelRetryStrategy: (round: number) => (!connected && round > 3 ? null : Math.min(200 * round, 2_000)),
      // Subscribes to the Sentinels' failover messages, so that after a manual failover writes
      // move to the new master at once instead of going to the old one until it steps down.
      failoverDetector: true,
      ...options,
      sentinels: addresses,
      name: resolved.master,
      ...(username ? { username, sentinelUsername: username } : {}),
      ...(password ? { password, sentinelPassword: password } : {}),
      ...tlsOptions,
      ...(tls ? { sentinelTLS: tlsSettings, enableTLSForSentinelMode: true } : {}),
      ...(database === undefined ? {} : { db: database }),
    });
    client.once('ready', () => {
      connected = true;
    });
    return client;
  }

  if (database !== undefined && database !== 0) throw invalidOption(option, `expected no database number, because a Redis Cluster has database 0 only, received /${database}`);
  // Auto-pipelining is left out: its batches hold commands of several slots, and when one of
  // those slots moves to another master, ioredis fails the whole batch instead of following it.
  const { retryStrategy, enableOfflineQueue, lazyConnect, enableAutoPipelining: _autoPipelining, ...perNode } = options;
  const clusterOptions: ClusterOptions = {
    redisOptions: { ...perNode, ...(username ? { username } : {}), ...(password ? { password } : {}), ...tlsOptions },
    ...(retryStrategy === undefined ? {} : { clusterRetryStrategy: retryStrategy }),
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    // ioredis retries a command on another node after a closed connection, by default up to 16
    // times 100 ms apart, which the per-node commandTimeout does not bound. Without an offline
    // queue the caller wants a prompt failure, so six retries 50 ms apart are the limit. Each
    // MOVED, ASK or TRYAGAIN reply during a slot migration counts as one of them, and a script
    // over a migrating slot can meet several (the slot migration test fails with two).
    ...(enableOfflineQueue === false ? { maxRedirections: 6, retryDelayOnFailover: 50, retryDelayOnClusterDown: 50, retryDelayOnTryAgain: 50 } : {}),
  };
  return new Cluster(addresses, clusterOptions);
}

/** Connection states of a Cluster node in which it serves no commands. */
const DOWN_STATUSES: ReadonlySet<string> = new Set(['close', 'reconnecting', 'end']);

/**
 * Returns whether the client can serve commands now. A Cluster client stays `ready` while its
 * masters die, so for a Cluster no known master connection may be closed or reconnecting. NOTE: a
 * master that ioredis dropped from its node list after a slot refresh is not seen here.
 */
export function redisConnected(client: RedisClient): boolean {
  if (client.status !== 'ready') return false;
  if (!(client instanceof Cluster)) return true;
  // Node connections open on first use, so only a closed or reconnecting one counts as down.
  const masters = client.nodes('master');
  return masters.length > 0 && masters.every((node) => !DOWN_STATUSES.has(node.status));
}

/**
 * Creates an ioredis client with {@link BASELINE_REDIS_OPTIONS} and waits until it is ready.
 * `rediss://` URLs connect with TLS; `overrides` may add TLS options such as `ecdhCurve`.
 *
 * @throws {ScorerError} `WG_SCORER_INVALID_OPTION` for a URL that is not `redis:` or `rediss:`,
 *   `WG_SCORER_STORE_UNAVAILABLE` when the first connection fails.
 */
export async function createRedisClient(target: string | RedisTarget, overrides: RedisOptions = {}): Promise<RedisClient> {
  const client = newRedisClient(target, { ...BASELINE_REDIS_OPTIONS, ...overrides, lazyConnect: true });
  // The failed connect below is reported once as an error; without a listener ioredis would
  // also print every failed attempt with a stack trace.
  const quiet = (): void => {};
  client.on('error', quiet);
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new ScorerError(
      'WG_SCORER_STORE_UNAVAILABLE',
      `${describeRedisTarget(target)} is not reachable (${(error as Error).message.replace(/\.$/, '')}). Check redis.${redisTarget(target).kind === 'server' ? 'url' : redisTarget(target).kind} in the configuration (REDIS_URL for the demo) and that Redis is running.`,
      { cause: error },
    );
  }

  client.removeListener('error', quiet);
  return client;
}

function parseRedisUrl(url: string, option: string): URL {
  const parsed = typeof url === 'string' ? URL.parse(url) : null;
  if (parsed === null || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')) {
    // The URL may carry a password, so only its scheme is echoed.
    const scheme = typeof url === 'string' ? (/^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? 'no scheme') : typeof url;
    throw invalidOption(option === 'redis.url' ? 'REDIS_URL' : option, `expected a redis:// or rediss:// URL, received a value with ${scheme}`);
  }

  return parsed;
}

function credentials(url: URL): { username: string; password: string } {
  return { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
}

function invalidOption(option: string, problem: string): ScorerError {
  return new ScorerError('WG_SCORER_INVALID_OPTION', `Invalid option ${option}: ${problem}.`, { detail: { option } });
}
