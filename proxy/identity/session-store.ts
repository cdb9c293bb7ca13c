import { createHash, randomBytes } from 'node:crypto';

import type { KeyValueStore } from '../state/key-value-store.ts';
import type { SessionOptions } from './options.ts';
import type { Principal } from './principal.ts';
import { encodeSessionEvent, isSessionId, SESSION_EVENTS_CHANNEL, type SessionEvent } from './session-events.ts';

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
  /** Per-session token that the sign-out form must send back (CSRF protection). */
  readonly csrf_token?: string;
  /** The IdP's session id (`sid` claim), matched by back-channel logout tokens. */
  readonly sid?: string;
  // NOTE: the tokens below are stored in clear, so anyone who can read Redis can use the access
  // token at the IdP until it expires. Protect Redis with TLS, ACLs and a private network.
  /** Latest raw ID token, sent as `id_token_hint` at RP-initiated logout. */
  readonly id_token?: string;
  /** Latest access token, used to read fresh claims from the userinfo endpoint. */
  readonly access_token?: string;
  /** When the claims were last read from the IdP, in milliseconds since the epoch. */
  readonly claims_refreshed_at?: number;
}

/** Creates a session id: 256 random bits, base64url without padding. */
export function createSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Sessions under `session:<id>` with an idle timeout (store TTL, refreshed on use) and an
 * absolute lifetime. Each deletion and each change of id is published on
 * {@link SESSION_EVENTS_CHANNEL}, so that every instance can close the session's WebSockets.
 */
export class SessionStore {
  readonly #store: KeyValueStore;
  readonly #options: SessionOptions;
  readonly #onRevoke: ((ids: readonly string[]) => void) | undefined;

  /** `onRevoke` receives the ids deleted by {@link revokeSubject} and {@link revokeSid}, so open WebSockets can be closed. */
  constructor(store: KeyValueStore, options: SessionOptions, onRevoke?: (ids: readonly string[]) => void) {
    this.#store = store;
    this.#options = options;
    this.#onRevoke = onRevoke;
  }

  /** Stores a record under a new id, adds the id to the subject and `sid` indexes, and returns the id. */
  async create(record: SessionRecord, now: number): Promise<string> {
    const id = createSessionId();
    await this.#store.set(key(id), JSON.stringify(record), this.#ttl(record, now));
    await this.#addToIndex(subjectIndexKey(record.subject), id, now);
    if (record.sid !== undefined) {
      await this.#addToIndex(sidIndexKey(record.sid), id, now);
    }
    return id;
  }

  /**
   * Replaces the record of a live session without changing its id, for example after a
   * claims refresh. Returns false when the session ended in the meantime, and then stores
   * nothing: the write is one atomic SET XX, so it cannot bring back a revoked session.
   */
  async update(id: string, record: SessionRecord, now: number): Promise<boolean> {
    if (!isSessionId(id)) {
      return false;
    }

    return this.#store.setIfPresent(key(id), JSON.stringify(record), this.#ttl(record, now));
  }

  /**
   * Deletes every session of `subject` and returns how many were live. The review queue calls
   * this to revoke a user's access. The `onRevoke` callback closes the sessions' WebSockets on
   * this instance, and the published event closes them on the others.
   */
  async revokeSubject(subject: string): Promise<number> {
    return (await this.revokeSubjectIds(subject)).length;
  }

  /** Deletes every session of `subject`, like {@link revokeSubject}, and returns their ids. */
  async revokeSubjectIds(subject: string): Promise<string[]> {
    return this.#revokeIndex(subjectIndexKey(subject), legacySubjectIndexKey(subject), (record) => record.subject === subject);
  }

  /** Deletes every session created from the IdP session `sid` (optionally only of `subject`) and returns their ids. */
  async revokeSid(sid: string, subject: string | undefined): Promise<string[]> {
    return this.#revokeIndex(sidIndexKey(sid), legacySidIndexKey(sid), (record) => record.sid === sid && (subject === undefined || record.subject === subject));
  }

  /**
   * Returns the ids among `ids` whose sessions still exist, without restarting their idle
   * timeout. Open WebSockets are checked with it, in case a session event was lost.
   */
  async liveIds(ids: readonly string[]): Promise<Set<string>> {
    const valid = ids.filter(isSessionId);
    const exists = await this.#store.exists(valid.map(key));
    return new Set(valid.filter((_, index) => exists[index]));
  }

  async #revokeIndex(indexKey: string, legacyKey: string, matches: (record: SessionRecord) => boolean): Promise<string[]> {
    const ids = new Set([...await this.#store.sortedSetMembers(indexKey), ...await this.#readLegacyIndex(legacyKey)]);
    const revoked: string[] = [];
    const gone: string[] = [];
    for (const id of ids) {
      const raw = await this.#store.get(key(id));
      const record = raw === null ? null : parseRecord(raw);
      if (raw === null) {
        gone.push(id);
      } else if (record !== null && matches(record)) {
        await this.#store.del(key(id));
        revoked.push(id);
      }
    }

    // Only the ids handled here leave the index, so a session created meanwhile stays revocable.
    await this.#store.sortedSetRemove(indexKey, [...revoked, ...gone]);
    await this.#store.del(legacyKey);
    if (revoked.length > 0) {
      this.#onRevoke?.(revoked);
      await this.#publish({ ended: revoked });
    }

    return revoked;
  }

  /**
   * Adds `id` to an index (a sorted set scored by creation time) in one atomic step, so that
   * concurrent sign-ins on any instance never drop each other's ids. A full index is first
   * cleared of ids whose sessions ended, so that the bound drops a live session only when the
   * subject has {@link MAX_INDEXED_SESSIONS} live ones.
   */
  async #addToIndex(indexKey: string, id: string, now: number): Promise<void> {
    const ids = await this.#store.sortedSetMembers(indexKey);
    if (ids.length >= MAX_INDEXED_SESSIONS) {
      const exists = await this.#store.exists(ids.map(key));
      await this.#store.sortedSetRemove(indexKey, ids.filter((_, index) => !exists[index]));
    }

    await this.#store.sortedSetAdd(indexKey, id, now, MAX_INDEXED_SESSIONS, this.#options.absolute_lifetime_s * 1000);
  }

  /** Reads an index in the JSON list form that earlier versions wrote. */
  async #readLegacyIndex(indexKey: string): Promise<string[]> {
    const raw = await this.#store.get(indexKey);
    if (raw === null) {
      return [];
    }
    try {
      const ids = JSON.parse(raw) as unknown;
      return Array.isArray(ids) ? ids.filter(isSessionId) : [];
    } catch {
      return [];
    }
  }

  async #publish(event: SessionEvent): Promise<void> {
    await this.#store.publish(SESSION_EVENTS_CHANNEL, encodeSessionEvent(event));
  }

  /**
   * Returns the live session for `id` and restarts its idle timeout, or null when the id is
   * malformed, unknown, expired or unreadable. Store failures propagate as `WG_STATE_UNAVAILABLE`.
   */
  async load(id: string, now: number): Promise<SessionRecord | null> {
    if (!isSessionId(id)) {
      return null;
    }

    // One round trip reads the session and restarts its idle timeout. GETEX never recreates a
    // key, so a concurrent logout or rotation cannot be undone here.
    const idleMs = this.#options.idle_timeout_s * 1000;
    const raw = await this.#store.getAndTouch(key(id), idleMs);
    const record = raw === null ? null : parseRecord(raw);
    if (record === null || record.absolute_expires_at <= now) {
      if (raw !== null) {
        await this.#store.del(key(id));
        await this.#publish({ ended: [id] });
      }
      return null;
    }

    // Near the end of the absolute lifetime, the key must expire before the idle timeout would.
    const ttl = this.#ttl(record, now);
    if (ttl < idleMs) {
      await this.#store.touch(key(id), ttl);
    }
    return record;
  }

  /**
   * Stores `record` under a fresh id, deletes `oldId`, and returns the new id. The published
   * event moves the old session's WebSockets on other instances to the new id.
   */
  async rotate(oldId: string | undefined, record: SessionRecord, now: number): Promise<string> {
    const id = await this.create(record, now);
    if (oldId !== undefined && isSessionId(oldId)) {
      await this.#store.del(key(oldId));
      await this.#publish({ renamed: { from: oldId, to: id } });
    }

    return id;
  }

  /** Deletes one session and publishes that it ended; a malformed id is ignored. */
  async delete(id: string): Promise<void> {
    if (isSessionId(id)) {
      await this.#store.del(key(id));
      await this.#publish({ ended: [id] });
    }
  }

  /** Builds the record for a new sign-in, with the absolute lifetime counted from `now` and a new CSRF token. */
  newRecord(fields: Omit<SessionRecord, 'created_at' | 'absolute_expires_at' | 'elevations'>, elevations: readonly Elevation[], now: number): SessionRecord {
    return { csrf_token: randomBytes(32).toString('base64url'), ...fields, created_at: now, absolute_expires_at: now + this.#options.absolute_lifetime_s * 1000, elevations };
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
    sessionStartedAt: record.created_at,
  };
  const elevatedAcr = [...new Set(record.elevations.filter((e) => e.until > now).map((e) => e.acr))];

  return { principal, elevatedAcr };
}

/** Bounds the index of one subject, so that a user who never signs out cannot grow it without limit. */
const MAX_INDEXED_SESSIONS = 50;

function key(id: string): string {
  return `session:${id}`;
}

function subjectIndexKey(subject: string): string {
  return `session-index:subject:${sha256(subject)}`;
}

function sidIndexKey(sid: string): string {
  return `session-index:sid:${sha256(sid)}`;
}

// Earlier versions kept the indexes as JSON lists under these keys. Revocation still reads and
// deletes them, so that sessions created before an upgrade, or by an instance not yet upgraded,
// are found. Both keys expire one absolute session lifetime after their last write.
function legacySubjectIndexKey(subject: string): string {
  return `session-subject:${sha256(subject)}`;
}

function legacySidIndexKey(sid: string): string {
  return `session-sid:${sha256(sid)}`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
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
