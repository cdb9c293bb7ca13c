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

/** Signature algorithms of the assertion: ES256, or ML-DSA-65 (FIPS 204, through Node's WebCrypto). */
export type AssertionAlgorithm = 'ES256' | 'ML-DSA-65';

export interface AssertionSignerOptions {
  /** `iss` of every assertion. */
  readonly issuer: string;
  /** Lifetime of one assertion, in seconds. */
  readonly ttlSeconds: number;
  /** Default `ES256`. */
  readonly algorithm?: AssertionAlgorithm;
}

/**
 * Creates a signer whose key pair lives only in memory for this process. A new key id
 * per start means upstreams must fetch the JWKS again after a restart (they do on an unknown
 * `kid`). Every assertion states `iss`, `aud` (the route id), `sub`, `groups`, `acr` and
 * `device` when known, `auth_method`, `iat`, `exp` (`iat` + `ttlSeconds`) and a `jti`.
 */
export async function createAssertionSigner(options: AssertionSignerOptions): Promise<AssertionSigner> {
  const alg = options.algorithm ?? 'ES256';
  if (alg !== 'ES256' && alg !== 'ML-DSA-65') {
    throw new TypeError(`Option assertion.algorithm must be ES256 or ML-DSA-65, received ${JSON.stringify(alg)}.`);
  }
  // NOTE: Node 24 marks ML-DSA in WebCrypto as experimental and prints one warning when it is first used.
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const kid = randomUUID();
  const publicJwk = Object.freeze({ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' });
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
      .setProtectedHeader({ alg, kid, typ: 'wardgate-assertion+jwt' })
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
