import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import t from 'tap';

import type { RouteConfig } from '../../proxy/routing/router.ts';
import { createTrustedProxies } from '../../proxy/http/trusted-proxies.ts';
import { createTestIssuer, writeIdentityTestPolicy } from './identity-fixtures.ts';
import { rawRequest, startTestStack, type TestStack } from './support.ts';

const AUDIENCE = 'ehr-api';
const ISSUER = 'https://tokens.lab.example';
const PROXY_ADDRESS = '127.0.0.2';

const dir = mkdtempSync(join(tmpdir(), 'wgtest-api-identity-'));
const issuer = await createTestIssuer(dir, ISSUER, AUDIENCE);
const failClosed = { redis: 'closed', scorer: 'closed', idp: 'closed' } as const;

let stack: TestStack;
t.before(async () => {
  stack = await startTestStack({
    policyFile: writeIdentityTestPolicy(dir, ['open']),
    routes: (upstream): RouteConfig[] => [
      { id: 'open', host: 'ehr.localhost', path_prefix: '/', upstream, sensitivity: 'low', fail_mode: failClosed, public: true },
      { id: 'fhir', host: '*', path_prefix: '/fhir', upstream, sensitivity: 'normal', fail_mode: failClosed, required_scopes: ['patient.read'] },
      { id: 'ehr', host: '*', path_prefix: '/', upstream, sensitivity: 'normal', fail_mode: failClosed },
    ],
    configure: (config) => ({
      ...config,
      listen: { ...config.listen, trusted_proxies: { ranges: [], proxies: createTrustedProxies([{ address: PROXY_ADDRESS, prefix: 32, family: 'ipv4' }]) } },
      bearer: { issuers: [{ issuer: ISSUER, audience: AUDIENCE, jwks_file: issuer.jwksFile, algorithms: ['ES256'], clock_skew: 30 }], jwks_cooldown: 60, jwks_max_age: 3600 },
    }),
  });
});
t.teardown(async () => {
  await stack.close();
  rmSync(dir, { recursive: true, force: true });
});

async function bearer(claims: Record<string, unknown> = {}): Promise<string> {
  return `Bearer ${await issuer.sign(claims, stack.clock.now)}`;
}

function echoed(body: string): { headers: Record<string, string>; user: Record<string, unknown> | null } {
  return JSON.parse(body) as { headers: Record<string, string>; user: Record<string, unknown> | null };
}

t.test('bearer token from a configured issuer reaches the upstream as an assertion', async (t) => {
  const response = await rawRequest(stack, '/debug/headers', { headers: { authorization: await bearer(), accept: 'application/json' } });
  t.equal(response.status, 200);

  const assertion = echoed(response.body).headers['x-wardgate-assertion']!;
  const jwks = createLocalJWKSet(JSON.parse((await rawRequest(stack, '/.well-known/wardgate/jwks.json')).body) as JSONWebKeySet);
  const { payload } = await jwtVerify(assertion, jwks, { issuer: 'wardgate', audience: 'ehr', currentDate: new Date(stack.clock.now) });
  t.equal(payload.sub, 'lab-analyzer-service');
  t.same(payload.groups, ['lab']);
  t.equal(payload.auth_method, 'bearer');
});

t.test('route with required_scopes', async (t) => {
  const missing = await rawRequest(stack, '/fhir/Patient', { headers: { authorization: await bearer({ scope: 'openid observation.read' }), accept: 'application/json' } });
  t.equal(missing.status, 403, 'a token without the scope gets 403');
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="wardgate", error="insufficient_scope", error_description="The access token lacks a scope this resource requires", scope="patient.read"');
  t.equal(JSON.parse(missing.body).error, 'WG_AUTH_INSUFFICIENT_SCOPE');

  const none = await rawRequest(stack, '/fhir/Patient', { headers: { authorization: await bearer(), accept: 'application/json' } });
  t.equal(none.status, 403, 'a token without any scope gets 403');

  const granted = await rawRequest(stack, '/fhir/Patient', { headers: { authorization: await bearer({ scope: 'observation.read patient.read' }), accept: 'application/json' } });
  t.equal(granted.status, 200, 'a token with the scope passes');

  const scp = await rawRequest(stack, '/fhir/Patient', { headers: { authorization: await bearer({ scp: ['patient.read'] }), accept: 'application/json' } });
  t.equal(scp.status, 200, 'an scp array counts as well');
});

t.test('hostile token through the pipeline gets invalid_token', async (t) => {
  const response = await rawRequest(stack, '/debug/headers', { headers: { authorization: await bearer({ iss: `${ISSUER}/` }), accept: 'application/json' } });
  t.equal(response.status, 401);
  t.equal(response.headers['www-authenticate'], 'Bearer realm="wardgate", error="invalid_token", error_description="The access token is invalid"');
  t.equal(JSON.parse(response.body).error, 'WG_AUTH_TOKEN_INVALID');
});

const FORGED_IDENTITY = {
  'X-Wardgate-User': 'chief-of-medicine',
  'X_Wardgate_User': 'chief-of-medicine',
  'x-remote-user': 'admin',
  'X_Remote_User': 'admin',
  'Remote-User': 'admin',
  'X-Wardgate-Assertion': 'eyJhbGciOiJub25lIn0.e30.',
  'x_wardgate_assertion': 'eyJhbGciOiJub25lIn0.e30.',
  'X-Forwarded-User': 'admin',
  'X_Forwarded_Email': 'admin@hospital.example',
};

for (const [name, host, auth] of [['protected', undefined, true], ['public', 'ehr.localhost', false]] as const) {
  t.test(`identity headers never reach the upstream on a ${name} route`, async (t) => {
    const headers: Record<string, string> = { ...FORGED_IDENTITY, accept: 'application/json' };
    if (auth) headers.authorization = await bearer();
    if (host) headers.host = `${host}:${new URL(stack.url).port}`;
    const response = await rawRequest(stack, '/debug/headers', { headers });
    t.equal(response.status, 200);

    const received = echoed(response.body).headers;
    for (const forged of Object.keys(FORGED_IDENTITY)) {
      const canonical = forged.toLowerCase();
      if (canonical === 'x-wardgate-assertion' && auth) {
        t.not(received[canonical], FORGED_IDENTITY['X-Wardgate-Assertion'], 'the assertion is Wardgate\'s own');
      } else {
        t.equal(received[canonical], undefined, `${forged} is removed`);
      }
    }
    if (!auth) t.equal(received['x-wardgate-assertion'], undefined, 'an anonymous request carries no assertion');
  });
}

t.test('X-Forwarded-* from an untrusted client are replaced', async (t) => {
  const response = await rawRequest(stack, '/debug/headers', {
    headers: { authorization: await bearer(), accept: 'application/json', 'X-Forwarded-For': '10.9.9.9', 'X-Forwarded-Host': 'evil.example', 'X-Forwarded-Proto': 'http', 'X_Forwarded_For': '10.8.8.8', Forwarded: 'for=10.7.7.7' },
    localAddress: '127.0.0.3',
  });
  t.equal(response.status, 200);
  const received = echoed(response.body).headers;
  t.equal(received['x-forwarded-for'], '127.0.0.3', 'the socket address is the client');
  t.equal(received['x-forwarded-host'], `localhost:${new URL(stack.url).port}`, 'the Host header stands');
  t.equal(received['x-forwarded-proto'], 'https');
  t.equal(received['x_forwarded_for'], undefined);
  t.equal(received.forwarded, undefined);
});

t.test('X-Forwarded-* from a trusted proxy are honoured', async (t) => {
  stack.spans.reset();
  const response = await rawRequest(stack, '/debug/headers', {
    headers: { authorization: await bearer(), accept: 'application/json', 'X-Forwarded-For': '10.9.9.9, 192.0.2.44, 127.0.0.2', 'X-Forwarded-Host': 'ehr.hospital.example', 'X-Forwarded-Proto': 'https' },
    localAddress: PROXY_ADDRESS,
  });
  t.equal(response.status, 200);
  const received = echoed(response.body).headers;
  t.equal(received['x-forwarded-for'], '192.0.2.44, 127.0.0.2, 127.0.0.2', 'the right-most untrusted address is the client; forged hops left of it are dropped');
  t.equal(received['x-forwarded-host'], 'ehr.hospital.example');
});

t.test('forged proxy and hop-by-hop headers never reach the upstream', async (t) => {
  const forged: Record<string, string> = {
    'X-Original-URL': '/admin',
    'X-Rewrite-URL': '/admin',
    'X-Forwarded-Client-Cert': 'By=spiffe://evil;URI=spiffe://admin',
    'X-SSL-Client-DN': 'CN=admin',
    'X_SSL_Client_Verify': 'SUCCESS',
    'X-Client-Cert': 'forged',
    'X-Amzn-Oidc-Identity': 'admin',
    'x-amzn-oidc-data': 'forged',
    'X-Ms-Client-Principal-Name': 'admin',
    'X-MS-CLIENT-PRINCIPAL': 'forged',
    'X-Goog-Authenticated-User-Email': 'accounts.google.com:admin@example.com',
    'Cf-Access-Authenticated-User-Email': 'admin@example.com',
    'Cf-Access-Jwt-Assertion': 'forged',
    'X-Userinfo': 'forged',
    'X-Id-Token': 'forged',
    'X-Access-Token': 'forged',
    'X-Authenticated-User': 'admin',
    'X-Authenticated-Userid': 'admin',
    'Authenticated-User': 'admin',
    'X-Groups': 'admins',
    'True-Client-IP': '10.9.9.9',
    'X-Client-IP': '10.9.9.9',
    'Keep-Alive': 'timeout=5',
    'TE': 'trailers',
    'Proxy-Authorization': 'Basic Zm9yZ2Vk',
    'Proxy-Connection': 'keep-alive',
    'Upgrade': 'h2c',
    'X-Listed-Hop': 'forged',
  };
  const headers = { ...forged, authorization: await bearer(), accept: 'application/json', connection: 'close, x-wardgate-assertion, X-Listed-Hop', 'x-request-id': 'kept-1' };

  const response = await rawRequest(stack, '/debug/headers', { headers });
  t.equal(response.status, 200);

  const received = echoed(response.body).headers;
  for (const name of Object.keys(forged)) {
    const canonical = name.toLowerCase().replace(/_/g, '-');
    t.notOk(Object.keys(received).some((key) => key.replace(/_/g, '-') === canonical), `${name} is removed`);
  }
  t.ok(received['x-wardgate-assertion'], 'a Connection list does not remove the assertion');
  t.notMatch(String(received.connection ?? ''), /x-wardgate-assertion|x-listed-hop/i, 'the client\'s Connection list is not forwarded');
  t.equal(received['x-request-id'], 'kept-1', 'other headers are forwarded');
  t.equal(received['x-forwarded-for'], '127.0.0.1', 'Wardgate sets the client address');
});
