/**
 * A string key-value store with per-key expiry, shared by sessions, login attempts and
 * saved request bodies. Both implementations behave the same, so tests run one table
 * against each.
 */
export interface KeyValueStore {
  /** Returns the value, or null when the key is missing or expired. */
  get(key: string): Promise<string | null>;
  /** Stores the value, replacing any previous one, and expires it after `ttlMs` milliseconds. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Resets the expiry of an existing key; returns false when the key is missing, and never creates it. */
  touch(key: string, ttlMs: number): Promise<boolean>;
  del(key: string): Promise<void>;
  /** Returns the value and deletes the key in one atomic step (Redis GETDEL), so only one caller gets it. */
  take(key: string): Promise<string | null>;
  close(): Promise<void>;
}

/** Throws when a TTL is not a positive whole number of milliseconds. */
export function assertTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`ttlMs must be a positive integer number of milliseconds, received ${String(ttlMs)}`);
  }
}
