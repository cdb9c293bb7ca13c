import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { decodeProtectedHeader } from 'jose';
import t, { type Test } from 'tap';

import { createAssertionVerifier } from '../../docs/examples/verify-assertion.ts';
import { createAssertionSigner, type AssertionAlgorithm } from '../../proxy/assertion/signer.ts';
import type { Principal } from '../../proxy/identity/principal.ts';

const TTL_S = 60;
const nurse: Principal = {
  subject: 'nurse-0042',
  groups: ['clinicians', 'nurses'],
  acr: 'urn:wardgate:acr:mfa',
  amr: ['pwd', 'otp'],
  method: 'session',
  device: 'urn:hospital:workstation:ward-3-cart-2',
  sessionId: 'opaque-session-id',
};

/** Serves a signer's JWKS over loopback HTTP, as Wardgate serves it over HTTPS. */
async function serveJwks(t: Test, jwks: unknown): Promise<string> {
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/wardgate/jwks.json`;
}

for (const algorithm of ['ES256', 'ML-DSA-65'] as const satisfies readonly AssertionAlgorithm[]) {
  t.test(`${algorithm} assertion verifies with the documented example`, async (t) => {
    const signer = await createAssertionSigner({ issuer: 'wardgate', ttlSeconds: TTL_S, algorithm });
    t.equal(signer.jwks.keys.length, 1);
    t.equal(signer.jwks.keys[0]!.alg, algorithm, 'the JWKS key has the configured algorithm');
    t.equal(signer.jwks.keys[0]!.kty, algorithm === 'ES256' ? 'EC' : 'AKP');
    t.notOk('d' in signer.jwks.keys[0]! || 'priv' in signer.jwks.keys[0]!, 'the JWKS holds no private key material');

    const token = await signer.assertionFor(nurse, 'ehr', Date.now());
    const header = decodeProtectedHeader(token);
    t.equal(header.alg, algorithm);
    t.equal(header.kid, signer.jwks.keys[0]!.kid);
    t.equal(header.typ, 'wardgate-assertion+jwt');

    const verify = createAssertionVerifier(await serveJwks(t, signer.jwks), 'ehr');
    const identity = await verify(token);
    t.equal(identity.iss, 'wardgate');
    t.equal(identity.aud, 'ehr');
    t.equal(identity.sub, 'nurse-0042');
    t.same(identity.groups, ['clinicians', 'nurses']);
    t.equal(identity.acr, 'urn:wardgate:acr:mfa');
    t.equal(identity.device, 'urn:hospital:workstation:ward-3-cart-2');
    t.equal(identity.auth_method, 'session');
    t.equal(identity.exp! - identity.iat!, TTL_S, 'lifetime is assertion.ttl');
    t.notOk('sessionId' in identity || 'session_id' in identity, 'the session id never leaves Wardgate');

    await t.rejects(createAssertionVerifier(await serveJwks(t, signer.jwks), 'pacs')(token), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' }, 'another route rejects it');
    const old = await signer.assertionFor({ ...nurse, subject: 'nurse-0043' }, 'ehr', Date.now() - 10 * 60_000);
    await t.rejects(verify(old), { code: 'ERR_JWT_EXPIRED' }, 'an expired assertion is rejected');
    await t.rejects(verify(undefined), /missing X-Wardgate-Assertion header/);

    const other = await createAssertionSigner({ issuer: 'wardgate', ttlSeconds: TTL_S, algorithm });
    await t.rejects(verify(await other.assertionFor(nurse, 'ehr', Date.now())), { code: 'ERR_JWKS_NO_MATCHING_KEY' }, 'an assertion from another key is rejected');
  });
}

t.test('unknown assertion algorithm is rejected', async (t) => {
  await t.rejects(createAssertionSigner({ issuer: 'wardgate', ttlSeconds: TTL_S, algorithm: 'HS256' as AssertionAlgorithm }), /assertion\.algorithm must be ES256 or ML-DSA-65, received "HS256"/);
});

t.test('docs show the tested example verbatim', async (t) => {
  const doc = readFileSync(new URL('../../docs/upstream-assertion.md', import.meta.url), 'utf8');
  const example = readFileSync(new URL('../../docs/examples/verify-assertion.ts', import.meta.url), 'utf8');
  t.ok(doc.includes('```ts\n' + example + '```'), 'docs/upstream-assertion.md contains docs/examples/verify-assertion.ts in a ts code block');
});
