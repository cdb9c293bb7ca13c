/**
 * A string key-value store with per-key expiry, sorted sets and a publish/subscribe channel,
 * shared by sessions, login attempts and saved request bodies. Both implementations behave
 * the same, so tests run one table against each.
 */
export interface KeyValueStore {
  /** Returns the value, or null when the key is missing or expired. */
  get(key: string): Promise<string | null>;
  /** Stores the value, replacing any previous one, and expires it after `ttlMs` milliseconds. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /**
   * Stores the value only when the key is missing, in one atomic step (Redis SET NX PX), and
   * returns whether it was stored. An existing key keeps its value and expiry.
   */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /**
   * Replaces the value and expiry only when the key exists, in one atomic step (Redis SET XX
   * PX), and returns whether it did. A key deleted meanwhile is therefore never recreated.
   */
  setIfPresent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Resets the expiry of an existing key; returns false when the key is missing, and never creates it. */
  touch(key: string, ttlMs: number): Promise<boolean>;
  /**
   * Returns the value and resets the key's expiry to `ttlMs` in one step (Redis GETEX PX, Redis
   * 6.2 or later), or null when the key is missing. A missing key is never created.
   */
  getAndTouch(key: string, ttlMs: number): Promise<string | null>;
  del(key: string): Promise<void>;
  /** Returns the value and deletes the key in one atomic step (Redis GETDEL), so only one caller gets it. */
  take(key: string): Promise<string | null>;
  /** Returns, for each key in order, whether it exists. */
  exists(keys: readonly string[]): Promise<boolean[]>;
  /**
   * Adds `member` with `score` to the sorted set at `key`, removes the lowest-scored members
   * beyond `maxMembers`, and expires the set after `ttlMs` milliseconds, all in one atomic
   * step (Redis MULTI). Concurrent calls therefore never lose a member.
   */
  sortedSetAdd(key: string, member: string, score: number, maxMembers: number, ttlMs: number): Promise<void>;
  /** Returns the members of the sorted set at `key`, lowest score first, or an empty list when it is missing. */
  sortedSetMembers(key: string): Promise<string[]>;
  /** Removes the given members from the sorted set at `key`; other members and the expiry stay. */
  sortedSetRemove(key: string, members: readonly string[]): Promise<void>;
  /**
   * Sends `message` to the subscribers of `channel` in every process that shares the store.
   * Delivery is at most once: a subscriber that is disconnected at the time misses it.
   */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Passes every message published on `channel` to `listener` until the returned function is
   * called. After a lost connection the subscription is restored and `listener.onResubscribe`
   * is called, so the subscriber can catch up on what it missed.
   */
  subscribe(channel: string, listener: ChannelListener): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Receiver of the messages of one channel; it must not throw. */
export interface ChannelListener {
  onMessage(message: string): void;
  /** Called after a subscription lost with its connection has been restored. */
  onResubscribe?(): void;
}

/** Throws when a TTL is not a positive whole number of milliseconds. */
export function assertTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`ttlMs must be a positive integer number of milliseconds, received ${String(ttlMs)}`);
  }
}

/** Throws when the bound of a sorted set is not a positive whole number. */
export function assertMaxMembers(maxMembers: number): void {
  if (!Number.isSafeInteger(maxMembers) || maxMembers <= 0) {
    throw new RangeError(`maxMembers must be a positive integer, received ${String(maxMembers)}`);
  }
}
