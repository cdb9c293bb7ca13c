import https from 'node:https';
import type { AddressInfo } from 'node:net';

import t from 'tap';

import { createIdentity } from '../../proxy/identity/identity.ts';
import { assertIdentityOptions, type IdentityOptions } from '../../proxy/identity/options.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import { createTestCertificates } from './helpers.ts';

const store = new MemoryKeyValueStore();
t.teardown(() => store.close());

const valid: IdentityOptions = {
  oidc: { issuer: 'https://idp.example', client_id: 'wardgate', client_secret: 'secret' },
  session: { idle_timeout_s: 900, absolute_lifetime_s: 3600 },
  store,
};

t.test('valid options pass', async (t) => {
  t.doesNotThrow(() => assertIdentityOptions(valid));
});

t.test('bad options name the option', async (t) => {
  const cases: [string, unknown, string][] = [
    ['oidc.issuer', { ...valid, oidc: { ...valid.oidc, issuer: 'ftp://idp.example' } }, 'oidc.issuer'],
    ['oidc.issuer with query', { ...valid, oidc: { ...valid.oidc, issuer: 'https://idp.example/?x=1' } }, 'oidc.issuer'],
    ['oidc.client_id', { ...valid, oidc: { ...valid.oidc, client_id: 7 } }, 'oidc.client_id'],
    ['oidc.client_secret', { ...valid, oidc: { ...valid.oidc, client_secret: '' } }, 'oidc.client_secret'],
    ['oidc.scopes without openid', { ...valid, oidc: { ...valid.oidc, scopes: ['email'] } }, 'oidc.scopes'],
    ['oidc.algorithms none', { ...valid, oidc: { ...valid.oidc, algorithms: ['none'] } }, 'oidc.algorithms'],
    ['oidc.algorithms HS256', { ...valid, oidc: { ...valid.oidc, algorithms: ['HS256'] } }, 'oidc.algorithms'],
    ['oidc.ca', { ...valid, oidc: { ...valid.oidc, ca: 'not a pem' } }, 'oidc.ca'],
    ['session missing', { ...valid, session: undefined }, 'session'],
    ['idle timeout string', { ...valid, session: { idle_timeout_s: '900', absolute_lifetime_s: 3600 } }, 'session.idle_timeout_s'],
    ['idle over absolute', { ...valid, session: { idle_timeout_s: 7200, absolute_lifetime_s: 3600 } }, 'session.idle_timeout_s'],
    ['store', { ...valid, store: {} }, 'store'],
    ['bearer without keys', { ...valid, bearer: { issuers: [{ issuer: 'https://t.example', audience: 'a', algorithms: ['RS256'] }] } }, 'bearer.issuers[0].jwks_uri'],
    ['bearer duplicated issuer', { ...valid, bearer: { issuers: [
      { issuer: 'https://t.example', audience: 'a', algorithms: ['RS256'], jwks_file: 'a.json' },
      { issuer: 'https://t.example', audience: 'b', algorithms: ['RS256'], jwks_file: 'b.json' },
    ] } }, 'bearer.issuers[1].issuer'],
    ['bearer algorithms empty', { ...valid, bearer: { issuers: [{ issuer: 'https://t.example', audience: 'a', algorithms: [], jwks_file: 'a.json' }] } }, 'bearer.issuers[0].algorithms'],
  ];
  for (const [name, options, option] of cases) {
    t.throws(() => assertIdentityOptions(options as IdentityOptions), { code: 'WG_AUTH_INVALID_OPTION', message: new RegExp(`^Option "${option.replace(/[[\]]/g, '\\$&')}" must be `) }, name);
  }
});

t.test('unreadable jwks_file fails start-up', async (t) => {
  const certs = createTestCertificates();
  const server = https.createServer({ key: certs.key, cert: certs.cert }, (_req, res) => res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));

  await t.rejects(createIdentity({ ...valid, oidc: { ...valid.oidc, issuer, ca: certs.ca }, bearer: { issuers: [{ issuer: 'https://t.example', audience: 'a', algorithms: ['RS256'], jwks_file: '/nonexistent/jwks.json' }] } }), { code: 'WG_AUTH_INVALID_OPTION', message: /^Option "bearer\.issuers\[0\]\.jwks_file" must be a readable JWKS file/ });
});

t.test('discovery checks the issuer and the CA', async (t) => {
  const certs = createTestCertificates();
  const server = https.createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    t.equal(req.url, '/.well-known/openid-configuration');
    res.end(JSON.stringify({ issuer: 'https://someone-else.example', authorization_endpoint: 'https://x/auth', token_endpoint: 'https://x/token', jwks_uri: 'https://x/jwks' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));

  await t.rejects(createIdentity({ ...valid, oidc: { ...valid.oidc, issuer, ca: certs.ca } }), { code: 'WG_AUTH_ISSUER_MISMATCH', status: 502 });
  await t.rejects(createIdentity({ ...valid, oidc: { ...valid.oidc, issuer } }), { code: 'WG_AUTH_DISCOVERY_FAILED', status: 502 }, 'untrusted certificate without oidc.ca');
});
