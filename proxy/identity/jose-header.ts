import { IdentityError } from './errors.ts';

/** Header parameters that make a token carry or point to its own verification key (RFC 7515 section 4.1). */
const KEY_BEARING_PARAMETERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;
const MAX_KID_LENGTH = 256;

/**
 * Checks the protected header of a compact JWS before any key lookup or signature check, so
 * that no header can make Wardgate fetch a URL, trust an embedded key or spend work on
 * decryption. Rejects, with `WG_AUTH_TOKEN_INVALID`:
 *
 * - a JWE (five segments), whatever its `alg` or `p2c`, because access tokens must be signed;
 * - `jwk`, `jku`, `x5u` or `x5c`, because keys come only from the issuer's configured JWKS;
 * - a `kid` with `/`, `\`, `..`, control characters or more than 256 characters;
 * - any `crit` parameter, because Wardgate understands no JWS extension (RFC 7515 section 4.1.11);
 * - `alg` missing, `none`, or an HMAC algorithm.
 */
export function assertAcceptableJoseHeader(token: string): void {
  const segments = token.split('.');
  if (segments.length === 5) {
    throw headerError(`is a JWE (encrypted token${describeJweAlgorithm(segments[0]!)}), which is never decrypted; send a signed JWS access token`);
  }
  if (segments.length !== 3) {
    throw headerError(`has ${segments.length} segments, expected 3 (a compact JWS)`);
  }

  const header = decodeSegment(segments[0]!);
  if (header === null) {
    throw headerError('has a protected header that is not a base64url JSON object');
  }

  for (const name of KEY_BEARING_PARAMETERS) {
    if (name in header) {
      throw headerError(`has header parameter "${name}", which names its own key; keys come only from the configured issuer's JWKS`);
    }
  }

  if ('crit' in header) {
    throw headerError(`has header parameter "crit" ${JSON.stringify(header.crit).slice(0, 80)}, and Wardgate understands no critical JWS extension`);
  }

  const alg = header.alg;
  if (typeof alg !== 'string' || alg === 'none' || /^HS/i.test(alg)) {
    throw headerError(`has header "alg" ${JSON.stringify(alg ?? null)}, expected an asymmetric signature algorithm`);
  }

  const kid = header.kid;
  if (kid !== undefined && !isSafeKid(kid)) {
    throw headerError(`has header "kid" ${typeof kid === 'string' ? JSON.stringify(kid.slice(0, 80)) : typeof kid} with path or control characters, or longer than ${MAX_KID_LENGTH} characters`);
  }
}

function isSafeKid(kid: unknown): boolean {
  return typeof kid === 'string'
    && kid.length > 0
    && kid.length <= MAX_KID_LENGTH
    && /^[\x20-\x7e]+$/.test(kid)
    && !kid.includes('/')
    && !kid.includes('\\')
    && !kid.includes('..');
}

function decodeSegment(segment: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

function describeJweAlgorithm(segment: string): string {
  const header = decodeSegment(segment);
  if (header === null || typeof header.alg !== 'string') return '';

  return `, alg ${JSON.stringify(header.alg.slice(0, 40))}${typeof header.p2c === 'number' ? ` with p2c ${header.p2c}` : ''}`;
}

function headerError(detail: string): IdentityError {
  return new IdentityError('WG_AUTH_TOKEN_INVALID', `Bearer token ${detail}. Send a valid access token from a configured issuer.`);
}
