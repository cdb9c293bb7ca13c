import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import t from 'tap';

import { Browser, createTestCertificates, startStack, testApp } from './helpers.ts';

const FILE_ISSUER = 'https://tokens.file.example';
const AUDIENCE = 'https://wardgate.example/api';

const fileKeys = await generateKeyPair('ES256');
const remoteKeys = await generateKeyPair('RS256');
const strangerKeys = await generateKeyPair('ES256');

const dir = mkdtempSync(join(tmpdir(), 'wgtest-bearer-'));
const jwksFile = join(dir, 'jwks.json');
writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...await exportJWK(fileKeys.publicKey), kid: 'file-1', alg: 'ES256' }] }));

const jwksCerts = createTestCertificates();
const remoteJwks = JSON.stringify({ keys: [{ ...await exportJWK(remoteKeys.publicKey), kid: 'remote-1', alg: 'RS256' }] });
const jwksServer = https.createServer({ key: jwksCerts.key, cert: jwksCerts.cert }, (_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(remoteJwks);
});
await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
const remoteIssuer = `https://127.0.0.1:${(jwksServer.address() as AddressInfo).port}`;

const stack = await startStack(testApp, {
  bearer: {
    issuers: [
      { issuer: FILE_ISSUER, audience: AUDIENCE, jwks_file: jwksFile, algorithms: ['ES256'] },
      { issuer: remoteIssuer, audience: AUDIENCE, jwks_uri: `${remoteIssuer}/jwks`, algorithms: ['RS256'], ca: jwksCerts.ca },
    ],
  },
});
t.teardown(async () => {
  await stack.close();
  await new Promise<void>((resolve) => {
    jwksServer.close(() => resolve());
    jwksServer.closeAllConnections();
  });
  rmSync(dir, { recursive: true, force: true });
});

function token(claims: Record<string, unknown>, header: { alg: string; kid: string } = { alg: 'ES256', kid: 'file-1' }, key = fileKeys.privateKey): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: FILE_ISSUER, aud: AUDIENCE, sub: 'device-42', iat: now, exp: now + 300, groups: ['devices'], ...claims })
    .setProtectedHeader(header)
    .sign(key);
}

function unsigned(claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ iss: FILE_ISSUER, aud: AUDIENCE, sub: 'attacker', iat: now, exp: now + 300, ...claims })}.`;
}

async function call(authorization: string): Promise<{ status: number; wwwAuthenticate: unknown; body: Record<string, any> }> {
  const browser = new Browser(stack.certs.ca);
  const response = await browser.request(`${stack.rpOrigin}/whoami`, { headers: { authorization } });
  return { status: response.status, wwwAuthenticate: response.headers['www-authenticate'], body: JSON.parse(response.body) };
}

const INVALID = 'Bearer realm="wardgate", error="invalid_token", error_description="The access token is invalid"';

t.test('valid token from jwks_file gives the principal', async (t) => {
  const response = await call(`Bearer ${await token({ email: 'pump@devices.example' })}`);
  t.equal(response.status, 200);
  t.same(response.body, { kind: 'authenticated', principal: { subject: 'device-42', groups: ['devices'], email: 'pump@devices.example', method: 'bearer' }, elevatedAcr: [] });
});

t.test('valid token from jwks_uri over private CA', async (t) => {
  const signed = await token({ iss: remoteIssuer }, { alg: 'RS256', kid: 'remote-1' }, remoteKeys.privateKey);
  const response = await call(`Bearer ${signed}`);
  t.equal(response.status, 200);
  t.equal(response.body.principal.subject, 'device-42');
});

t.test('bad tokens get the exact 401 challenge', async (t) => {
  const hmacKey = new TextEncoder().encode('a-shared-secret-that-is-long-enough-for-hs256');
  const cases: [string, string, string][] = [
    ['alg none', unsigned({}), 'WG_AUTH_TOKEN_INVALID'],
    ['alg HS256', await new SignJWT({ iss: FILE_ISSUER, aud: AUDIENCE, sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'file-1' }).sign(hmacKey), 'WG_AUTH_TOKEN_INVALID'],
    ['wrong audience', await token({ aud: 'https://other.example' }), 'WG_AUTH_TOKEN_INVALID'],
    ['unknown issuer', await token({ iss: 'https://unknown.example' }), 'WG_AUTH_TOKEN_INVALID'],
    ['unknown key', await token({}, { alg: 'ES256', kid: 'file-1' }, strangerKeys.privateKey), 'WG_AUTH_TOKEN_INVALID'],
    ['algorithm not allowed for issuer', await token({ iss: remoteIssuer }, { alg: 'ES256', kid: 'remote-1' }), 'WG_AUTH_TOKEN_INVALID'],
    ['groups wrongly typed', await token({ groups: 'admins' }), 'WG_AUTH_TOKEN_INVALID'],
    ['not a JWT', 'abc.def', 'WG_AUTH_TOKEN_INVALID'],
    ['truncated', (await token({})).slice(0, 60), 'WG_AUTH_TOKEN_INVALID'],
    ['oversized', 'a'.repeat(10_000), 'WG_AUTH_TOKEN_INVALID'],
  ];
  for (const [name, value, code] of cases) {
    const response = await call(`Bearer ${value}`);
    t.equal(response.status, 401, `${name}: status`);
    t.equal(response.wwwAuthenticate, INVALID, `${name}: WWW-Authenticate`);
    t.equal(response.body.error, code, `${name}: code`);
  }
});

t.test('expired token gets invalid_token', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const response = await call(`Bearer ${await token({ iat: now - 3600, exp: now - 600 })}`);
  t.equal(response.status, 401);
  t.equal(response.wwwAuthenticate, 'Bearer realm="wardgate", error="invalid_token", error_description="The access token expired"');
  t.equal(response.body.error, 'WG_AUTH_TOKEN_EXPIRED');
});

t.test('other schemes and malformed headers', async (t) => {
  const basic = await call('Basic dXNlcjpwYXNz');
  t.equal(basic.status, 401);
  t.equal(basic.wwwAuthenticate, 'Bearer realm="wardgate"');
  t.equal(basic.body.error, 'WG_AUTH_TOKEN_MISSING');

  const empty = await call('Bearer ');
  t.equal(empty.status, 401);
  t.equal(empty.wwwAuthenticate, INVALID);

  const twoTokens = await call(`Bearer ${await token({})} ${await token({})}`);
  t.equal(twoTokens.status, 401);
  t.equal(twoTokens.wwwAuthenticate, INVALID);
});
