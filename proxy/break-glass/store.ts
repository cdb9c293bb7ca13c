import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StepUpRequirement } from '../../policy/decision.ts';
import type { Contribution } from '../../scorer/types.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';

/**
 * An offer shown to one caller on one page (break-glass form or notice interstitial).
 * The claim or acknowledgement must come back with the offer id and its CSRF token, from
 * the same subject and, for browsers, the same session.
 */
export interface OfferRecord {
  readonly kind: 'break_glass' | 'notice';
  readonly subject: string;
  /** SHA-256 of the session id for browser sessions; absent for bearer callers. */
  readonly session?: string;
  /** SHA-256 of the CSRF token. */
  readonly csrf: string;
  readonly route: string;
  readonly return_to: string;
  readonly trace_id: string;
  readonly created_at: number;
  readonly groups: readonly string[];
  readonly method: string;
  /** Pseudonymised path, for the audit and review entries. */
  readonly path: string;
  /** Pseudonyms of the patients the path names; absent in offers stored before this field existed. */
  readonly patients?: readonly string[];
  readonly rule: string;
  readonly reasons: readonly string[];
  readonly risk: number;
  readonly top: readonly Contribution[];
  readonly model_version?: string;
  readonly ttl?: number;
  readonly reason_codes?: readonly string[];
  readonly step_up?: StepUpRequirement;
  /** Key of the acknowledgement a notice offer creates. */
  readonly notice_key?: string;
}

/** An active emergency access of one user on one route. */
export interface GrantRecord {
  readonly subject: string;
  readonly route: string;
  readonly reason_code: string;
  readonly trace_id: string;
  /** Milliseconds since the epoch. */
  readonly expires_at: number;
}

/** Creates a random token: 256 bits, base64url without padding. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** SHA-256 in hex; used so that session ids and tokens are never stored in clear. */
export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Compares a presented CSRF token with the stored hash in constant time. */
export function csrfMatches(presented: string, storedHash: string): boolean {
  const a = Buffer.from(sha256(presented), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** Offers, grants and notice acknowledgements in the shared key-value store. */
export class OversightStore {
  readonly #store: KeyValueStore;

  constructor(store: KeyValueStore) {
    this.#store = store;
  }

  async saveOffer(id: string, record: OfferRecord, ttlMs: number): Promise<void> {
    await this.#store.set(`bg:offer:${id}`, JSON.stringify(record), ttlMs);
  }

  /** Returns the offer, or null when the id is malformed, unknown or expired. */
  async loadOffer(id: string): Promise<OfferRecord | null> {
    if (!TOKEN.test(id)) return null;
    const raw = await this.#store.get(`bg:offer:${id}`);
    return raw === null ? null : (JSON.parse(raw) as OfferRecord);
  }

  /** Deletes the offer and returns whether this caller was the one to delete it, so each offer is used once. */
  async consumeOffer(id: string): Promise<boolean> {
    return (await this.#store.take(`bg:offer:${id}`)) !== null;
  }

  async saveGrant(grant: GrantRecord, ttlMs: number): Promise<void> {
    await this.#store.set(grantKey(grant.subject, grant.route), JSON.stringify(grant), ttlMs);
  }

  async loadGrant(subject: string, route: string, now: number): Promise<GrantRecord | null> {
    const raw = await this.#store.get(grantKey(subject, route));
    const grant = raw === null ? null : (JSON.parse(raw) as GrantRecord);
    return grant !== null && grant.expires_at > now ? grant : null;
  }

  async acknowledged(key: string): Promise<boolean> {
    return (await this.#store.get(key)) !== null;
  }

  async acknowledge(key: string, ttlMs: number, now: number): Promise<void> {
    await this.#store.set(key, String(now), ttlMs);
  }
}

/** Key of a notice acknowledgement: per session, route and set of patients (pseudonyms). */
export function noticeKey(sessionId: string, route: string, patientPseudonyms: readonly string[]): string {
  const patients = patientPseudonyms.length === 0 ? '-' : sha256([...patientPseudonyms].sort().join(',')).slice(0, 32);
  return `notice:ack:${sha256(sessionId).slice(0, 32)}:${sha256(route).slice(0, 16)}:${patients}`;
}

function grantKey(subject: string, route: string): string {
  return `bg:grant:${sha256(subject).slice(0, 32)}:${sha256(route).slice(0, 16)}`;
}
