import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

/** The identity Wardgate vouches for, as an upstream reads it from the assertion. */
export interface WardgateIdentity extends JWTPayload {
  sub: string;
  groups: string[];
  auth_method: 'session' | 'bearer' | 'mtls';
  acr?: string;
  device?: string;
}

/**
 * Builds a verifier for the Wardgate assertion header. `jwksUrl` is
 * `https://<wardgate host>/.well-known/wardgate/jwks.json`; `routeId` is the id of the route
 * that forwards to this upstream, which Wardgate puts in `aud`.
 */
export function createAssertionVerifier(jwksUrl: string, routeId: string) {
  // jose caches the keys and refetches them when a token names an unknown kid,
  // which happens after every Wardgate restart.
  const jwks = createRemoteJWKSet(new URL(jwksUrl));

  return async function verifyAssertion(header: string | undefined): Promise<WardgateIdentity> {
    if (header === undefined) throw new Error('missing X-Wardgate-Assertion header');

    const { payload } = await jwtVerify<WardgateIdentity>(header, jwks, {
      issuer: 'wardgate',
      audience: routeId,
      algorithms: ['ES256', 'ML-DSA-65'],
      typ: 'wardgate-assertion+jwt',
      requiredClaims: ['sub', 'iat', 'exp'],
      maxTokenAge: '10 minutes',
    });
    return payload;
  };
}
