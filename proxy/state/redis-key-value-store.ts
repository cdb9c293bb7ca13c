import type { RedisOptions } from 'ioredis';

import { describeRedisTarget, newRedisClient, type RedisClient, type RedisTarget } from '../../scorer/baselines/redis-client.ts';

import { StateError } from './errors.ts';
import { assertMaxMembers, assertTtl, type ChannelListener, type KeyValueStore } from './key-value-store.ts';

export interface RedisKeyValueStoreOptions {
  /** Redis URL, e.g. `redis://127.0.0.1:6379/0` or `rediss://` for TLS, or a Cluster or Sentinel target. */
  readonly target: string | RedisTarget;
  /** Prefix put in front of every key and channel name, e.g. `wardgate:`. */
  readonly keyPrefix: string;
  /** Extra ioredis options (TLS `ca`, timeouts); `keyPrefix` and `lazyConnect` are set here. */
  readonly redis?: RedisOptions;
}

/**
 * A {@link KeyValueStore} in Redis. Commands fail with `WG_STATE_UNAVAILABLE` (503) when
 * Redis does not respond, so callers can apply the route's fail mode. Subscriptions use a
 * second connection, opened on the first {@link subscribe}, because a Redis connection in
 * subscriber mode accepts no other commands.
 */
export class RedisKeyValueStore implements KeyValueStore {
  readonly #redis: RedisClient;
  readonly #keyPrefix: string;
  /** Creates the subscriber connection with the same target and options. */
  readonly #newSubscriber: () => RedisClient;
  readonly #listeners = new Map<string, Set<ChannelListener>>();
  #subscriber: Promise<RedisClient> | undefined;

  private constructor(redis: RedisClient, keyPrefix: string, newSubscriber: () => RedisClient) {
    this.#redis = redis;
    this.#keyPrefix = keyPrefix;
    this.#newSubscriber = newSubscriber;
  }

  /** Connects to Redis and checks it with PING; throws `WG_STATE_UNAVAILABLE` when it does not respond. */
  static async connect(options: RedisKeyValueStoreOptions): Promise<RedisKeyValueStore> {
    const target = options.target;
    if (typeof target === 'string' && !/^rediss?:\/\//.test(target)) {
      // A malformed URL may still carry a password, so only its scheme is echoed.
      throw new StateError('WG_STATE_INVALID_OPTION', 500, `Option "target" must be a redis:// or rediss:// URL, received a value with ${/^[a-z][a-z0-9+.-]*:/i.exec(target)?.[0] ?? 'no scheme'}.`);
    }
    if (typeof options.keyPrefix !== 'string' || options.keyPrefix === '') {
      throw new StateError('WG_STATE_INVALID_OPTION', 500, `Option "keyPrefix" must be a non-empty string, received ${JSON.stringify(options.keyPrefix)}.`);
    }

    const redisOptions: RedisOptions = {
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      ...options.redis,
      keyPrefix: options.keyPrefix,
      lazyConnect: true,
    };
    let redis: RedisClient;
    try {
      redis = newRedisClient(target, redisOptions);
    } catch (cause) {
      throw new StateError('WG_STATE_INVALID_OPTION', 500, (cause as Error).message, { cause });
    }
    // ioredis emits 'error' on every failed reconnect; commands still reject, which is where callers see it.
    redis.on('error', () => {});

    try {
      await redis.connect();
      await redis.ping();
    } catch (cause) {
      redis.disconnect();
      throw new StateError('WG_STATE_UNAVAILABLE', 503, `${describeRedisTarget(target)} did not respond: ${(cause as Error).message}. Check that Redis is running and the redis section of the configuration is right.`, { cause });
    }

    // The subscriber has no key prefix to apply: channel names get it in publish and subscribe.
    return new RedisKeyValueStore(redis, options.keyPrefix, () => newRedisClient(target, { ...redisOptions, autoResubscribe: false }));
  }

  async get(key: string): Promise<string | null> {
    return this.#run('GET', () => this.#redis.get(key));
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    await this.#run('SET', () => this.#redis.set(key, value, 'PX', ttlMs));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    const stored = await this.#run('SET NX', () => this.#redis.set(key, value, 'PX', ttlMs, 'NX'));
    return stored === 'OK';
  }

  async setIfPresent(key: string, value: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    const stored = await this.#run('SET XX', () => this.#redis.set(key, value, 'PX', ttlMs, 'XX'));
    return stored === 'OK';
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    const updated = await this.#run('PEXPIRE', () => this.#redis.pexpire(key, ttlMs));
    return updated === 1;
  }

  async getAndTouch(key: string, ttlMs: number): Promise<string | null> {
    assertTtl(ttlMs);
    return this.#run('GETEX', () => this.#redis.getex(key, 'PX', ttlMs));
  }

  async del(key: string): Promise<void> {
    await this.#run('DEL', () => this.#redis.del(key));
  }

  async take(key: string): Promise<string | null> {
    return this.#run('GETDEL', () => this.#redis.getdel(key));
  }

  async exists(keys: readonly string[]): Promise<boolean[]> {
    if (keys.length === 0) {
      return [];
    }

    // One command per key: in a Redis Cluster the keys may live in different slots, which one
    // pipeline cannot span. With auto-pipelining the commands still leave in one write.
    const replies = await this.#run('EXISTS', () => Promise.all(keys.map((key) => this.#redis.exists(key))));
    return replies.map((reply) => reply === 1);
  }

  async sortedSetAdd(key: string, member: string, score: number, maxMembers: number, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    assertMaxMembers(maxMembers);
    // MULTI runs the three commands with no other client's command in between.
    const transaction = this.#redis.multi().zadd(key, score, member).zremrangebyrank(key, 0, -maxMembers - 1).pexpire(key, ttlMs);
    const replies = await this.#run('MULTI ZADD', () => transaction.exec());
    for (let index = 0; index < 3; index++) {
      replyOf('MULTI ZADD', replies, index);
    }
  }

  async sortedSetMembers(key: string): Promise<string[]> {
    return this.#run('ZRANGE', () => this.#redis.zrange(key, 0, -1));
  }

  async sortedSetRemove(key: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) {
      return;
    }

    await this.#run('ZREM', () => this.#redis.zrem(key, ...members));
  }

  async publish(channel: string, message: string): Promise<void> {
    // ioredis applies keyPrefix to keys only, so the channel gets the prefix here.
    await this.#run('PUBLISH', () => this.#redis.publish(this.#keyPrefix + channel, message));
  }

  async subscribe(channel: string, listener: ChannelListener): Promise<() => Promise<void>> {
    const subscriber = await this.#openSubscriber();
    const listeners = this.#listeners.get(channel) ?? new Set<ChannelListener>();
    this.#listeners.set(channel, listeners);
    listeners.add(listener);
    if (listeners.size === 1) {
      await this.#run('SUBSCRIBE', () => subscriber.subscribe(this.#keyPrefix + channel));
    }

    return async () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.#listeners.get(channel) === listeners) {
        this.#listeners.delete(channel);
        await this.#run('UNSUBSCRIBE', () => subscriber.unsubscribe(this.#keyPrefix + channel));
      }
    };
  }

  async close(): Promise<void> {
    const subscriber = await this.#subscriber?.catch(() => undefined);
    this.#listeners.clear();
    await subscriber?.quit().catch(() => subscriber.disconnect());
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  /** Opens the subscriber connection once; a failed attempt is forgotten so the next call retries. */
  #openSubscriber(): Promise<RedisClient> {
    this.#subscriber ??= this.#connectSubscriber().catch((cause: unknown) => {
      this.#subscriber = undefined;
      throw cause;
    });
    return this.#subscriber;
  }

  async #connectSubscriber(): Promise<RedisClient> {
    // #resubscribe restores the channels and then calls each listener's onResubscribe.
    const subscriber = this.#newSubscriber();
    subscriber.on('error', () => {});
    subscriber.on('message', (channel: string, message: string) => {
      for (const listener of this.#listeners.get(channel.slice(this.#keyPrefix.length)) ?? []) {
        listener.onMessage(message);
      }
    });

    try {
      await subscriber.connect();
    } catch (cause) {
      subscriber.disconnect();
      throw new StateError('WG_STATE_UNAVAILABLE', 503, `Redis subscriber connection failed: ${(cause as Error).message}.`, { cause });
    }
    // Every later 'ready' follows a reconnect, and the new connection has no subscriptions.
    subscriber.on('ready', () => void this.#resubscribe(subscriber));
    return subscriber;
  }

  async #resubscribe(subscriber: RedisClient): Promise<void> {
    const channels = [...this.#listeners.keys()];
    if (channels.length === 0) {
      return;
    }

    try {
      await subscriber.subscribe(...channels.map((channel) => this.#keyPrefix + channel));
    } catch {
      // Reconnecting is the retry: the next 'ready' subscribes again.
      subscriber.disconnect(true);
      return;
    }
    for (const channel of channels) {
      for (const listener of this.#listeners.get(channel) ?? []) {
        listener.onResubscribe?.();
      }
    }
  }

  async #run<T>(command: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (cause) {
      throw new StateError('WG_STATE_UNAVAILABLE', 503, `Redis command ${command} failed: ${(cause as Error).message}.`, { cause });
    }
  }
}

/** Returns the reply of command `index` of a pipeline or transaction, or throws its error. */
function replyOf(command: string, replies: [Error | null, unknown][] | null, index: number): unknown {
  const [error, reply] = replies?.[index] ?? [new Error('the transaction was aborted'), null];
  if (error !== null) {
    throw new StateError('WG_STATE_UNAVAILABLE', 503, `Redis command ${command} failed: ${error.message}.`, { cause: error });
  }

  return reply;
}
