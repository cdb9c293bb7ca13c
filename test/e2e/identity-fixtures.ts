import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/**
 * Policy for identity tests: devices (mTLS) and every authenticated caller are allowed, and so
 * is everyone on the routes in `publicRoutes`. Risk is ignored, so a decision depends only on identity.
 */
export function identityTestPolicy(publicRoutes: readonly string[]): string {
  const open = publicRoutes.length === 0 ? '' : `  - id: open-allow
    match: { routes: [${publicRoutes.join(', ')}] }
    action: allow
`;
  return `version: 1
rules:
  - id: devices-allow
    match: { authenticated: true }
    when: "principal.method == 'mtls' && principal.device != ''"
    action: allow
  - id: authenticated-allow
    match: { authenticated: true }
    action: allow
${open}`;
}

/** Writes {@link identityTestPolicy} into `dir` and returns its path. */
export function writeIdentityTestPolicy(dir: string, publicRoutes: readonly string[] = []): string {
  const file = join(dir, 'identity-policy.yaml');
  writeFileSync(file, identityTestPolicy(publicRoutes));
  return file;
}

/** A token issuer for tests: an ES256 key pair whose public JWKS is written to a file. */
export interface TestIssuer {
  readonly issuer: string;
  readonly jwksFile: string;
  sign(claims: Record<string, unknown>, nowMs: number): Promise<string>;
}

export async function createTestIssuer(dir: string, issuer: string, audience: string): Promise<TestIssuer> {
  const keys = await generateKeyPair('ES256');
  const jwksFile = join(dir, 'issuer-jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...await exportJWK(keys.publicKey), kid: 'test-1', alg: 'ES256' }] }));

  return {
    issuer,
    jwksFile,
    sign: (claims, nowMs) => {
      const nowS = Math.floor(nowMs / 1000);
      return new SignJWT({ iss: issuer, aud: audience, sub: 'lab-analyzer-service', iat: nowS, exp: nowS + 300, groups: ['lab'], ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'test-1' })
        .sign(keys.privateKey);
    },
  };
}
