import { createSign, KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import t, { type Test } from 'tap';

import { Browser, startStack, testApp } from './helpers.ts';

const ISSUER = 'https://tokens.hostile.example';
const AUDIENCE = 'https://wardgate.example/api';
const CLOCK_SKEW_S = 30;

const issuerKeys = await generateKeyPair('RS256', { extractable: true });
const attackerKeys = await generateKeyPair('RS256', { extractable: true });
const issuerPublicPem = await exportSPKI(issuerKeys.publicKey);

const dir = mkdtempSync(join(tmpdir(), 'wgtest-hostile-'));
const jwksFile = join(dir, 'jwks.json');
writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...await exportJWK(issuerKeys.publicKey), kid: 'issuer-1', alg: 'RS256' }] }));

// Any request here means Wardgate followed a URL from a token header.
const lureRequests: IncomingMessage[] = [];
const lure = createServer((req, res) => {
  lureRequests.push(req);
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ keys: [] }));
});
await new Promise<void>((resolve) => lure.listen(0, '127.0.0.1', resolve));
const lureUrl = `http://127.0.0.1:${(lure.address() as AddressInfo).port}`;

const stack = await startStack(testApp, {
  bearer: { issuers: [{ issuer: ISSUER, audience: AUDIENCE, jwks_file: jwksFile, algorithms: ['RS256'], clock_skew_s: CLOCK_SKEW_S }] },
});
t.teardown(async () => {
  await stack.close();
  await new Promise<void>((resolve) => lure.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const nowS = () => Math.floor(Date.now() / 1000);

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: ISSUER, aud: AUDIENCE, sub: 'device-7', iat: nowS(), exp: nowS() + 300, ...overrides };
}

function sign(payload: Record<string, unknown>, header: Record<string, unknown> = {}, key: Parameters<SignJWT['sign']>[0] = issuerKeys.privateKey): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'issuer-1', ...header } as { alg: string }).sign(key);
}

/** Builds a compact token from raw header and payload objects with a dummy signature. */
function raw(header: Record<string, unknown>, payload: Record<string, unknown>, signature = 'c2ln'): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode(header)}.${encode(payload)}.${signature}`;
}

async function call(token: string): Promise<{ status: number; wwwAuthenticate: unknown; body: Record<string, any> }> {
  const browser = new Browser(stack.certs.ca);
  const response = await browser.request(`${stack.rpOrigin}/whoami`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
  return { status: response.status, wwwAuthenticate: response.headers['www-authenticate'], body: JSON.parse(response.body) };
}

const INVALID = 'Bearer realm="wardgate", error="invalid_token", error_description="The access token is invalid"';
const EXPIRED = 'Bearer realm="wardgate", error="invalid_token", error_description="The access token expired"';

async function assertInvalid(t: Test, token: string, message: RegExp, challenge = INVALID, code = 'WG_AUTH_TOKEN_INVALID'): Promise<void> {
  const response = await call(token);
  t.equal(response.status, 401, 'status 401');
  t.equal(response.wwwAuthenticate, challenge, 'WWW-Authenticate');
  t.equal(response.body.error, code, 'error code');
  t.match(response.body.message, message, 'message names the problem');
}

t.test('valid token passes', async (t) => {
  const response = await call(await sign(claims()));
  t.equal(response.status, 200);
  t.equal(response.body.principal.subject, 'device-7');
});

t.test('alg none is rejected', async (t) => {
  await assertInvalid(t, `${raw({ alg: 'none', typ: 'JWT' }, claims()).slice(0, -4)}`, /header "alg" "none"/);
});

for (const [name, prefix] of [['plain PEM', ''], ['leading whitespace', '\n \t'], ['junk before PEM', 'junk!']] as const) {
  t.test(`HS256 keyed with the issuer public key (${name}) is rejected`, async (t) => {
    const secret = new TextEncoder().encode(prefix + issuerPublicPem);
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'issuer-1' }).sign(secret);
    await assertInvalid(t, token, /header "alg" "HS256"/);
  });
}

t.test('embedded jwk is never trusted', async (t) => {
  const jwk = await exportJWK(attackerKeys.publicKey);
  const token = await sign(claims(), { jwk, kid: undefined }, attackerKeys.privateKey);
  await assertInvalid(t, token, /header parameter "jwk"/);
});

for (const parameter of ['jku', 'x5u'] as const) {
  t.test(`${parameter} pointing elsewhere is never fetched`, async (t) => {
    const token = await sign(claims(), { [parameter]: `${lureUrl}/keys` }, attackerKeys.privateKey);
    await assertInvalid(t, token, new RegExp(`header parameter "${parameter}"`));
    t.equal(lureRequests.length, 0, 'the URL in the header got no request');
  });
}

t.test('x5c chain in the header is not trusted', async (t) => {
  const token = await sign(claims(), { x5c: ['MIIB'] }, attackerKeys.privateKey);
  await assertInvalid(t, token, /header parameter "x5c"/);
});

for (const kid of ['../../etc/passwd', 'keys/issuer-1', '..\\issuer-1', 'issuer-1\u0000']) {
  t.test(`kid ${JSON.stringify(kid)} with path characters is rejected`, async (t) => {
    await assertInvalid(t, await sign(claims(), { kid }), /header "kid"/);
  });
}

t.test('wrong audience is rejected', async (t) => {
  await assertInvalid(t, await sign(claims({ aud: 'https://other.example/api' })), /claim "aud"/);
});

t.test('issuer with an extra trailing slash is rejected', async (t) => {
  await assertInvalid(t, await sign(claims({ iss: `${ISSUER}/` })), /configured issuer is "https:\/\/tokens\.hostile\.example"; issuers must match exactly/);
});

t.test('token without exp is rejected', async (t) => {
  const payload = claims();
  delete payload.exp;
  await assertInvalid(t, await sign(payload), /claim "exp"/);
});

t.test('expired token is rejected as expired', async (t) => {
  await assertInvalid(t, await sign(claims({ iat: nowS() - 3600, exp: nowS() - CLOCK_SKEW_S - 60 })), /has expired/, EXPIRED, 'WG_AUTH_TOKEN_EXPIRED');
});

t.test('nbf a few seconds ahead within the skew is accepted', async (t) => {
  const response = await call(await sign(claims({ nbf: nowS() + 5 })));
  t.equal(response.status, 200);
  t.equal(response.body.principal.subject, 'device-7');
});

t.test('nbf beyond the skew is rejected', async (t) => {
  await assertInvalid(t, await sign(claims({ nbf: nowS() + CLOCK_SKEW_S + 120 })), /claim "nbf"/);
});

t.test('unknown crit header is rejected', async (t) => {
  // jose refuses to sign with an unknown crit parameter, so the signature is made with node:crypto.
  const unsigned = raw({ alg: 'RS256', kid: 'issuer-1', crit: ['urn:example:ext'], 'urn:example:ext': true }, claims()).split('.').slice(0, 2).join('.');
  const signature = createSign('RSA-SHA256').update(unsigned).sign(KeyObject.from(issuerKeys.privateKey)).toString('base64url');
  const token = `${unsigned}.${signature}`;
  await assertInvalid(t, token, /header parameter "crit"/);
});

t.test('JWE with absurd PBES2 iteration count is rejected undecrypted', async (t) => {
  const header = { alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', p2c: 2_147_483_647, p2s: 'c2FsdHNhbHRzYWx0c2FsdA' };
  const token = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.ZW5j.aXY.Y2lwaGVy.dGFn`;
  await assertInvalid(t, token, /is a JWE \(encrypted token, alg "PBES2-HS512\+A256KW" with p2c 2147483647\), which is never decrypted/);
});

t.test('token signed by a stranger with the issuer kid is rejected', async (t) => {
  await assertInvalid(t, await sign(claims(), {}, attackerKeys.privateKey), /signature verification failed/);
});

const BAD_SUBJECTS: [string, unknown, RegExp][] = [
  ['an object', { a: 1 }, /is not a string/],
  ['a number', 7, /is not a string/],
  ['empty', '', /is empty/],
  ['CR LF header injection', 'svc\r\nx-injected: 1', /contains a control character/],
  ['NUL', 'svc\u0000', /contains a control character/],
  ['a C1 control', 'svc\u0085', /contains a control character/],
  ['256 characters', 's'.repeat(256), /longer than 255 characters/],
];

for (const [name, sub, problem] of BAD_SUBJECTS) {
  t.test(`sub ${name} is rejected`, async (t) => {
    await assertInvalid(t, await sign(claims({ sub })), /claim "sub"/);
    await assertInvalid(t, await sign(claims({ sub })), problem);
  });
}

t.test('sub of 255 characters passes', async (t) => {
  const sub = 'é'.repeat(255);
  const response = await call(await sign(claims({ sub })));

  t.equal(response.status, 200);
  t.equal(response.body.principal.subject, sub);
});
