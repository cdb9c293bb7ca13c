import { Redis, type RedisOptions } from 'ioredis';

import { StateError } from './errors.ts';
import { assertTtl, type KeyValueStore } from './key-value-store.ts';

export interface RedisKeyValueStoreOptions {
  /** Redis URL, e.g. `redis://127.0.0.1:6379/0` or `rediss://` for TLS. */
  readonly url: string;
  /** Prefix put in front of every key, e.g. `wardgate:`. */
  readonly keyPrefix: string;
  /** Extra ioredis options (TLS `ca`, timeouts); `keyPrefix` and `lazyConnect` are set here. */
  readonly redis?: RedisOptions;
}

/**
 * A {@link KeyValueStore} in Redis. Commands fail with `WG_STATE_UNAVAILABLE` (503) when
 * Redis does not respond, so callers can apply the route's fail mode.
 */
export class RedisKeyValueStore implements KeyValueStore {
  readonly #redis: Redis;

  private constructor(redis: Redis) {
    this.#redis = redis;
  }

  /** Connects to Redis and checks it with PING; throws `WG_STATE_UNAVAILABLE` when it does not respond. */
  static async connect(options: RedisKeyValueStoreOptions): Promise<RedisKeyValueStore> {
    if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
      throw new StateError('WG_STATE_INVALID_OPTION', 500, `Option "url" must be a redis:// or rediss:// URL, received ${JSON.stringify(options.url)}.`);
    }
    if (typeof options.keyPrefix !== 'string' || options.keyPrefix === '') {
      throw new StateError('WG_STATE_INVALID_OPTION', 500, `Option "keyPrefix" must be a non-empty string, received ${JSON.stringify(options.keyPrefix)}.`);
    }

    const redis = new Redis(options.url, {
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      ...options.redis,
      keyPrefix: options.keyPrefix,
      lazyConnect: true,
    });
    // ioredis emits 'error' on every failed reconnect; commands still reject, which is where callers see it.
    redis.on('error', () => {});

    try {
      await redis.connect();
      await redis.ping();
    } catch (cause) {
      redis.disconnect();
      throw new StateError('WG_STATE_UNAVAILABLE', 503, `Redis at ${redactUrl(options.url)} did not respond: ${(cause as Error).message}. Check that Redis is running and the URL is right.`, { cause });
    }

    return new RedisKeyValueStore(redis);
  }

  async get(key: string): Promise<string | null> {
    return this.#run('GET', () => this.#redis.get(key));
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    await this.#run('SET', () => this.#redis.set(key, value, 'PX', ttlMs));
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    const updated = await this.#run('PEXPIRE', () => this.#redis.pexpire(key, ttlMs));
    return updated === 1;
  }

  async del(key: string): Promise<void> {
    await this.#run('DEL', () => this.#redis.del(key));
  }

  async take(key: string): Promise<string | null> {
    return this.#run('GETDEL', () => this.#redis.getdel(key));
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async #run<T>(command: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (cause) {
      throw new StateError('WG_STATE_UNAVAILABLE', 503, `Redis command ${command} failed: ${(cause as Error).message}.`, { cause });
    }
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
