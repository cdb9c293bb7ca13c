/**
 * A small in-process cache with one lifetime for every entry and a maximum size; when full,
 * the oldest entry is dropped (insertion order).
 */
export class ExpiringMap<V> {
  readonly #entries = new Map<string, { readonly value: V; readonly expires: number }>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(ttlMs: number, maxEntries: number, now: () => number) {
    this.#ttlMs = ttlMs;
    this.#maxEntries = maxEntries;
    this.#now = now;
  }

  /** Returns the value, or undefined when the key is missing or expired. */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expires <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }

    return entry.value;
  }

  set(key: string, value: V): void {
    if (this.#ttlMs <= 0) return;

    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { value, expires: this.#now() + this.#ttlMs });
  }
}
