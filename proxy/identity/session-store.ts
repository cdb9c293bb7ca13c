import { randomBytes } from 'node:crypto';

import type { KeyValueStore } from '../state/key-value-store.ts';
import type { SessionOptions } from './options.ts';
import type { Principal } from './principal.ts';

/** A step-up that satisfies rules requiring `acr` until `until` (milliseconds since the epoch). */
export interface Elevation {
  readonly acr: string;
  readonly until: number;
}

/** Stored state of one signed-in browser. Times are in milliseconds unless the name ends in `_s`. */
export interface SessionRecord {
  readonly subject: string;
  readonly email?: string;
  readonly name?: string;
  readonly groups: readonly string[];
  readonly acr?: string;
  readonly amr?: readonly string[];
  /** OIDC `auth_time` of the latest authentication, in seconds since the epoch. */
  readonly auth_time?: number;
  readonly created_at: number;
  readonly absolute_expires_at: number;
  readonly elevations: readonly Elevation[];
}

const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Creates a session id: 256 random bits, base64url without padding. */
export function createSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/** Sessions under `session:<id>` with an idle timeout (store TTL, refreshed on use) and an absolute lifetime. */
export class SessionStore {
  readonly #store: KeyValueStore;
  readonly #options: SessionOptions;

  constructor(store: KeyValueStore, options: SessionOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** Stores a record under a new id and returns the id. */
  async create(record: SessionRecord, now: number): Promise<string> {
    const id = createSessionId();
    await this.#store.set(key(id), JSON.stringify(record), this.#ttl(record, now));
    return id;
  }

  /**
   * Returns the live session for `id` and restarts its idle timeout, or null when the id is
   * malformed, unknown, expired or unreadable. Store failures propagate as `WG_STATE_UNAVAILABLE`.
   */
  async load(id: string, now: number): Promise<SessionRecord | null> {
    if (!SESSION_ID_PATTERN.test(id)) {
      return null;
    }

    const raw = await this.#store.get(key(id));
    const record = raw === null ? null : parseRecord(raw);
    if (record === null || record.absolute_expires_at <= now) {
      if (raw !== null) {
        await this.#store.del(key(id));
      }
      return null;
    }

    // touch never recreates a key, so a concurrent logout or rotation cannot be undone here.
    await this.#store.touch(key(id), this.#ttl(record, now));
    return record;
  }

  /** Stores `record` under a fresh id, deletes `oldId`, and returns the new id. */
  async rotate(oldId: string | undefined, record: SessionRecord, now: number): Promise<string> {
    const id = await this.create(record, now);
    if (oldId !== undefined && SESSION_ID_PATTERN.test(oldId)) {
      await this.#store.del(key(oldId));
    }

    return id;
  }

  async delete(id: string): Promise<void> {
    if (SESSION_ID_PATTERN.test(id)) {
      await this.#store.del(key(id));
    }
  }

  /** Builds the record for a new sign-in, with the absolute lifetime counted from `now`. */
  newRecord(fields: Omit<SessionRecord, 'created_at' | 'absolute_expires_at' | 'elevations'>, elevations: readonly Elevation[], now: number): SessionRecord {
    return { ...fields, created_at: now, absolute_expires_at: now + this.#options.absolute_lifetime_s * 1000, elevations };
  }

  #ttl(record: SessionRecord, now: number): number {
    return Math.max(1, Math.min(this.#options.idle_timeout_s * 1000, record.absolute_expires_at - now));
  }
}

/** Builds the principal of a session and the acr values of its unexpired elevations. */
export function sessionPrincipal(id: string, record: SessionRecord, now: number): { principal: Principal; elevatedAcr: string[] } {
  const principal: Principal = {
    subject: record.subject,
    ...(record.email === undefined ? {} : { email: record.email }),
    ...(record.name === undefined ? {} : { name: record.name }),
    groups: record.groups,
    ...(record.acr === undefined ? {} : { acr: record.acr }),
    ...(record.amr === undefined ? {} : { amr: record.amr }),
    ...(record.auth_time === undefined ? {} : { auth_time: record.auth_time }),
    method: 'session',
    sessionId: id,
  };
  const elevatedAcr = [...new Set(record.elevations.filter((e) => e.until > now).map((e) => e.acr))];

  return { principal, elevatedAcr };
}

function key(id: string): string {
  return `session:${id}`;
}

function parseRecord(raw: string): SessionRecord | null {
  try {
    const value = JSON.parse(raw) as SessionRecord;
    const valid = typeof value.subject === 'string' && Array.isArray(value.groups) && Array.isArray(value.elevations)
      && Number.isFinite(value.absolute_expires_at) && Number.isFinite(value.created_at);
    return valid ? value : null;
  } catch {
    return null;
  }
}
