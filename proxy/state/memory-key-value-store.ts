import { assertMaxMembers, assertTtl, type ChannelListener, type KeyValueStore } from './key-value-store.ts';

interface Entry {
  /** A string, or a sorted set as member to score. */
  value: string | Map<string, number>;
  expiresAt: number;
}

/**
 * An in-process {@link KeyValueStore} for one instance (the demo without Redis).
 * Expired keys are invisible at once and are swept every `sweepIntervalMs`. Published
 * messages reach the subscribers of this store only.
 */
export class MemoryKeyValueStore implements KeyValueStore {
  readonly #entries = new Map<string, Entry>();
  readonly #channels = new Map<string, Set<ChannelListener>>();
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: { now?: () => number; sweepIntervalMs?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#sweeper = setInterval(() => this.#sweep(), options.sweepIntervalMs ?? 60_000);
    this.#sweeper.unref();
  }

  async get(key: string): Promise<string | null> {
    return this.#liveString(key) ?? null;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    this.#entries.set(key, { value, expiresAt: this.#now() + ttlMs });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    if (this.#live(key) !== undefined) {
      return false;
    }

    this.#entries.set(key, { value, expiresAt: this.#now() + ttlMs });
    return true;
  }

  async setIfPresent(key: string, value: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    if (this.#live(key) === undefined) {
      return false;
    }

    this.#entries.set(key, { value, expiresAt: this.#now() + ttlMs });
    return true;
  }

  async touch(key: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    const entry = this.#live(key);
    if (entry === undefined) {
      return false;
    }

    entry.expiresAt = this.#now() + ttlMs;
    return true;
  }

  async getAndTouch(key: string, ttlMs: number): Promise<string | null> {
    assertTtl(ttlMs);
    const value = this.#liveString(key);
    if (value === undefined) {
      return null;
    }

    this.#entries.get(key)!.expiresAt = this.#now() + ttlMs;
    return value;
  }

  async del(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  async take(key: string): Promise<string | null> {
    const value = this.#liveString(key);
    this.#entries.delete(key);
    return value ?? null;
  }

  async exists(keys: readonly string[]): Promise<boolean[]> {
    return keys.map((key) => this.#live(key) !== undefined);
  }

  async sortedSetAdd(key: string, member: string, score: number, maxMembers: number, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    assertMaxMembers(maxMembers);
    const members = this.#liveSortedSet(key) ?? new Map<string, number>();
    members.set(member, score);
    for (const [dropped] of sortByScore(members).slice(0, -maxMembers)) {
      members.delete(dropped);
    }

    this.#entries.set(key, { value: members, expiresAt: this.#now() + ttlMs });
  }

  async sortedSetMembers(key: string): Promise<string[]> {
    const members = this.#liveSortedSet(key);
    return members === undefined ? [] : sortByScore(members).map(([member]) => member);
  }

  async sortedSetRemove(key: string, members: readonly string[]): Promise<void> {
    const set = this.#liveSortedSet(key);
    if (set === undefined) {
      return;
    }

    for (const member of members) {
      set.delete(member);
    }
    // Redis deletes a sorted set whose last member is removed.
    if (set.size === 0) {
      this.#entries.delete(key);
    }
  }

  async publish(channel: string, message: string): Promise<void> {
    // Delivered on a later tick, as a message from Redis would be.
    for (const listener of this.#channels.get(channel) ?? []) {
      queueMicrotask(() => listener.onMessage(message));
    }
  }

  async subscribe(channel: string, listener: ChannelListener): Promise<() => Promise<void>> {
    const listeners = this.#channels.get(channel) ?? new Set<ChannelListener>();
    this.#channels.set(channel, listeners);
    listeners.add(listener);

    return async () => {
      listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#entries.clear();
    this.#channels.clear();
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined && entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }

    return entry;
  }

  #liveString(key: string): string | undefined {
    const value = this.#live(key)?.value;
    if (value instanceof Map) {
      throw wrongType(key, 'a sorted set', 'a string');
    }

    return value;
  }

  #liveSortedSet(key: string): Map<string, number> | undefined {
    const value = this.#live(key)?.value;
    if (typeof value === 'string') {
      throw wrongType(key, 'a string', 'a sorted set');
    }

    return value;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(key);
      }
    }
  }
}

/** Orders members as Redis does: by score, then by member. */
function sortByScore(members: Map<string, number>): [string, number][] {
  return [...members].sort(compareMembers);
}

function compareMembers([memberA, scoreA]: [string, number], [memberB, scoreB]: [string, number]): number {
  if (scoreA !== scoreB) {
    return scoreA - scoreB;
  }

  return memberA < memberB ? -1 : Number(memberA > memberB);
}

/** Builds the counterpart of the Redis WRONGTYPE error, so that both stores reject the same mistakes. */
function wrongType(key: string, actual: string, expected: string): TypeError {
  return new TypeError(`Key ${JSON.stringify(key)} contains ${actual}, expected ${expected}.`);
}
