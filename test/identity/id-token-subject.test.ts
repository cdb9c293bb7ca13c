import https from 'node:https';
import type { AddressInfo } from 'node:net';

import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import t from 'tap';

import { IdentityError } from '../../proxy/identity/errors.ts';
import { OidcClient } from '../../proxy/identity/oidc-client.ts';
import { createTestCertificates } from './helpers.ts';

// The ID token's `sub` becomes the session's subject, so it gets the same checks as a
// bearer token's `sub`. The IdP here serves only discovery and its key set.
const CLIENT_ID = 'wardgate-test';
const NONCE = 'nonce-1';

const keys = await generateKeyPair('RS256');
const certificates = createTestCertificates();
const jwks = JSON.stringify({ keys: [{ ...await exportJWK(keys.publicKey), kid: 'idp-1', alg: 'RS256' }] });
const server = https.createServer({ key: certificates.key, cert: certificates.cert }, (req, res) => {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/.well-known/openid-configuration') {
    res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` }));
  } else {
    res.end(jwks);
  }
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));

const client = await OidcClient.discover({ issuer, client_id: CLIENT_ID, client_secret: 'secret', ca: certificates.ca });
const nowS = () => Math.floor(Date.now() / 1000);

function idToken(sub: unknown): Promise<string> {
  const payload = { iss: issuer, aud: CLIENT_ID, sub, nonce: NONCE, iat: nowS(), exp: nowS() + 300 };
  return new SignJWT(payload as Record<string, unknown>).setProtectedHeader({ alg: 'RS256', kid: 'idp-1' }).sign(keys.privateKey);
}

t.test('ID token with a valid sub passes', async (t) => {
  const claims = await client.verifyIdToken(await idToken('alice'), NONCE, nowS());

  t.equal(claims.sub, 'alice');
});

const BAD_SUBJECTS: [string, unknown, RegExp][] = [
  ['an object', { a: 1 }, /is not a string/],
  ['empty', '', /is empty/],
  ['CR LF header injection', 'svc\r\nx-injected: 1', /contains a control character/],
  ['256 characters', 's'.repeat(256), /longer than 255 characters/],
];

for (const [name, sub, problem] of BAD_SUBJECTS) {
  t.test(`ID token sub ${name} is rejected`, async (t) => {
    const token = await idToken(sub);
    const error = await client.verifyIdToken(token, NONCE, nowS()).then(() => undefined, (caught: unknown) => caught);

    t.type(error, IdentityError);
    t.equal((error as IdentityError).code, 'WG_AUTH_ID_TOKEN_INVALID');
    t.match((error as IdentityError).message, /claim "sub"/);
    t.match((error as IdentityError).message, problem);
  });
}
