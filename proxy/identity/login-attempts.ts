import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { StepUpRequirement } from '../../policy/decision.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';

/** How long a started sign-in may take before its `state` stops being accepted. */
export const LOGIN_ATTEMPT_TTL_MS = 10 * 60 * 1000;

/** One started authorization request, stored under its `state` and used at most once. */
export interface LoginAttempt {
  readonly nonce: string;
  readonly code_verifier: string;
  readonly redirect_uri: string;
  readonly return_to: string;
  /** SHA-256 (base64url) of the browser binding cookie of the browser that started the sign-in. */
  readonly binding_hash: string;
  /** When the sign-in started, in seconds since the epoch; `max_age=0` step-ups compare `auth_time` with it. */
  readonly started_at_s: number;
  readonly step_up?: StepUpRequirement;
  /** Id of a request kept across this step-up, replayed after the callback. */
  readonly saved_request?: string;
}

/** Creates a random value for `state`, `nonce`, the PKCE verifier or the binding cookie: 256 bits, base64url. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Computes the PKCE S256 challenge of a verifier (RFC 7636 section 4.2). */
export function codeChallenge(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

export function hashBinding(binding: string): string {
  return createHash('sha256').update(binding).digest('base64url');
}

/** Compares a binding cookie with the stored hash in constant time. */
export function bindingMatches(binding: string | undefined, storedHash: string): boolean {
  if (binding === undefined) {
    return false;
  }

  const actual = Buffer.from(hashBinding(binding));
  const expected = Buffer.from(storedHash);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export async function saveAttempt(store: KeyValueStore, state: string, attempt: LoginAttempt): Promise<void> {
  await store.set(`login:${state}`, JSON.stringify(attempt), LOGIN_ATTEMPT_TTL_MS);
}

/**
 * Removes and returns the attempt for `state` (GETDEL), so a replayed callback finds nothing.
 * With `peek`, the attempt is only read: the callback checks the browser binding first, so a
 * callback carried to another browser does not use up the attempt of the browser that started it.
 */
export async function takeAttempt(store: KeyValueStore, state: string, options: { readonly peek?: boolean } = {}): Promise<LoginAttempt | null> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(state)) {
    return null;
  }

  const raw = options.peek === true ? await store.get(`login:${state}`) : await store.take(`login:${state}`);
  if (raw === null) {
    return null;
  }

  try {
    return JSON.parse(raw) as LoginAttempt;
  } catch {
    return null;
  }
}
