import { Redis, type RedisOptions } from 'ioredis';

import { ScorerError } from '../errors.ts';

/**
 * ioredis options for the baseline store. Requests must not wait for Redis: without an
 * offline queue and with one attempt per command, a dead Redis fails the request within
 * `commandTimeout`, and the proxy applies the route's fail mode while ioredis reconnects.
 */
export const BASELINE_REDIS_OPTIONS: Readonly<RedisOptions> = Object.freeze({
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 250,
  connectTimeout: 2_000,
  retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 2_000),
});

/**
 * Creates an ioredis client with {@link BASELINE_REDIS_OPTIONS} and waits until it is ready.
 * `rediss://` URLs connect with TLS; `overrides` may add TLS options such as `ecdhCurve`.
 *
 * @throws {ScorerError} `WG_SCORER_INVALID_OPTION` for a URL that is not `redis:` or `rediss:`,
 *   `WG_SCORER_STORE_UNAVAILABLE` when the first connection fails.
 */
export async function createRedisClient(url: string, overrides: RedisOptions = {}): Promise<Redis> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw invalidUrl(url, error);
  }

  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw invalidUrl(url);
  }

  const client = new Redis(url, { ...BASELINE_REDIS_OPTIONS, ...overrides, lazyConnect: true });
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
      `Redis at ${parsed.host} is not reachable (${(error as Error).message.replace(/\.$/, '')}). Check redis.url in the configuration (REDIS_URL for the demo) and that Redis is running.`,
      { cause: error },
    );
  }

  client.removeListener('error', quiet);
  return client;
}

function invalidUrl(url: string, cause?: unknown): ScorerError {
  // The URL may carry a password, so only its scheme is echoed.
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? 'no scheme';

  return new ScorerError(
    'WG_SCORER_INVALID_OPTION',
    `Invalid option REDIS_URL: expected a redis:// or rediss:// URL, received a value with ${scheme}.`,
    { cause, detail: { option: 'REDIS_URL' } },
  );
}
