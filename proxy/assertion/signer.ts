import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { Principal } from '../identity/principal.ts';

export interface AssertionSigner {
  /** Returns a signed identity assertion for `principal` on route `audience`, reusing a cached one while it stays fresh. */
  assertionFor(principal: Principal, audience: string, nowMs: number): Promise<string>;
  /** Public keys for upstreams to verify assertions, served at `/.well-known/wardgate/jwks.json`. */
  readonly jwks: { readonly keys: readonly JWK[] };
}

interface CachedAssertion {
  readonly token: string;
  readonly expiresAtMs: number;
}

/** Reissue a cached assertion once less than this share of its lifetime remains. */
const REFRESH_SHARE = 0.25;
const MAX_CACHED = 10_000;

/**
 * Creates an ES256 signer whose key pair lives only in memory for this process. A new key id
 * per start means upstreams must fetch the JWKS again after a restart (they do on an unknown
 * `kid`).
 */
export async function createAssertionSigner(options: { issuer: string; ttlSeconds: number }): Promise<AssertionSigner> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = randomUUID();
  const publicJwk = Object.freeze({ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' });
  const cache = new Map<string, CachedAssertion>();

  async function assertionFor(principal: Principal, audience: string, nowMs: number): Promise<string> {
    const key = cacheKey(principal, audience);
    const cached = cache.get(key);
    if (cached && cached.expiresAtMs - nowMs > options.ttlSeconds * 1000 * REFRESH_SHARE) return cached.token;

    const issuedAt = Math.floor(nowMs / 1000);
    const token = await new SignJWT({
      groups: principal.groups,
      ...(principal.email ? { email: principal.email } : {}),
      ...(principal.acr ? { acr: principal.acr } : {}),
      ...(principal.amr ? { amr: principal.amr } : {}),
      ...(principal.device ? { device: principal.device } : {}),
      auth_method: principal.method,
    })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'wardgate-assertion+jwt' })
      .setIssuer(options.issuer)
      .setAudience(audience)
      .setSubject(principal.subject)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + options.ttlSeconds)
      .setJti(randomUUID())
      .sign(privateKey);

    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(key, { token, expiresAtMs: (issuedAt + options.ttlSeconds) * 1000 });
    return token;
  }

  return { assertionFor, jwks: Object.freeze({ keys: Object.freeze([publicJwk]) }) };
}

/** Any change in what the assertion states gives a new cache entry, so a changed session never reuses an old assertion. */
function cacheKey(principal: Principal, audience: string): string {
  return JSON.stringify([audience, principal.sessionId ?? '', principal.subject, principal.groups, principal.acr ?? '', principal.device ?? '', principal.method]);
}
