import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { parseConfig } from '../../proxy/config/config.ts';
import { ConfigError, type ConfigIssue } from '../../proxy/config/errors.ts';
import { createRouter } from '../../proxy/routing/router.ts';
import { bearerOptions } from '../../proxy/identity/bearer-config.ts';
import { assertIdentityOptions } from '../../proxy/identity/options.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';

const ENV = { WARDGATE_OIDC_CLIENT_SECRET: 'secret', WARDGATE_PATIENT_KEY: 'ab'.repeat(32) };
const FILE = '/etc/wardgate/wardgate.yaml';

const BASE = `tls:
  cert: server.crt
  key: server.key
oidc:
  issuer: https://idp.hospital.example
  client_id: wardgate
policy: policy.yaml
model: model.onnx
routes:
  - id: ehr
    upstream: http://127.0.0.1:8080
`;

function parse(extra: string, base = BASE) {
  return parseConfig(base + extra, FILE, ENV);
}

function issues(text: string): readonly ConfigIssue[] {
  try {
    parseConfig(text, FILE, ENV);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

t.test('defaults without the new sections', async (t) => {
  const config = parse('');
  t.equal(config.bearer, undefined, 'no bearer section means no bearer issuers');
  t.equal(config.listen.trusted_proxies, undefined);
  t.equal(config.tls.crl, undefined);
  t.equal(config.assertion.algorithm, 'ES256');
  t.equal(config.routes[0]!.required_scopes, undefined);
});

t.test('bearer section with several issuers', async (t) => {
  const config = parse(`bearer:
  jwks_cooldown: 120
  jwks_max_age: 900
  issuers:
    - issuer: https://idp.hospital.example
      audience: wardgate-api
      jwks_uri: https://idp.hospital.example/jwks
      algorithms: [RS256, PS256]
      ca: certs/idp-ca.pem
      clock_skew: 10
    - issuer: https://devices.hospital.example/
      audience: device-api
      jwks_file: keys/devices.jwks.json
`);
  t.same(config.bearer, {
    issuers: [
      { issuer: 'https://idp.hospital.example', audience: 'wardgate-api', jwks_uri: 'https://idp.hospital.example/jwks', algorithms: ['RS256', 'PS256'], ca: '/etc/wardgate/certs/idp-ca.pem', clock_skew: 10 },
      { issuer: 'https://devices.hospital.example/', audience: 'device-api', jwks_file: '/etc/wardgate/keys/devices.jwks.json', algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'], clock_skew: 30 },
    ],
    jwks_cooldown: 120,
    jwks_max_age: 900,
  });
});

t.test('route scopes, trusted proxies, CRL and assertion algorithm', async (t) => {
  const config = parse(`listen:
  trusted_proxies: [10.0.0.0/8, 192.0.2.7, "fd00::/8"]
assertion:
  algorithm: ML-DSA-65
`, BASE.replace('tls:\n', 'tls:\n  client_ca: devices-ca.pem\n  crl: devices.crl\n').replace('    upstream: http://127.0.0.1:8080\n', '    upstream: http://127.0.0.1:8080\n    required_scopes: [patient.read, "system/*.read"]\n'));
  t.equal(config.assertion.algorithm, 'ML-DSA-65');
  t.equal(config.tls.crl, '/etc/wardgate/devices.crl');
  t.same(config.routes[0]!.required_scopes, ['patient.read', 'system/*.read']);
  const proxies = config.listen.trusted_proxies!.proxies;
  t.ok(proxies.contains('10.1.2.3'));
  t.ok(proxies.contains('::ffff:10.1.2.3'), 'IPv4-mapped IPv6 addresses match IPv4 ranges');
  t.ok(proxies.contains('192.0.2.7'));
  t.notOk(proxies.contains('192.0.2.8'));
  t.ok(proxies.contains('fd00::1'));
  t.notOk(proxies.contains('11.0.0.1'));
  t.notOk(proxies.contains('not-an-address'));
});

t.test('bad values are reported with option and line', async (t) => {
  const cases: [string, string, string, RegExp][] = [
    ['both jwks sources', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n      jwks_uri: https://a.example/jwks\n      jwks_file: a.json\n', 'bearer.issuers[0]', /set exactly one of jwks_uri .* and jwks_file/],
    ['no jwks source', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n', 'bearer.issuers[0]', /set exactly one of jwks_uri/],
    ['HS256 allowed', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n      jwks_file: a.json\n      algorithms: [RS256, HS256]\n', 'bearer.issuers[0].algorithms', /got \["HS256"\]; "none" and HS\* are never accepted/],
    ['alg none allowed', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n      jwks_file: a.json\n      algorithms: [none]\n', 'bearer.issuers[0].algorithms', /got \["none"\]/],
    ['http issuer', 'bearer:\n  issuers:\n    - issuer: http://idp.example\n      audience: x\n      jwks_file: a.json\n', 'bearer.issuers[0].issuer', /expected an https URL exactly as the tokens' "iss" claim spells it/],
    ['missing audience', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      jwks_file: a.json\n', 'bearer.issuers[0].audience', /missing required option/],
    ['duplicate issuer', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n      jwks_file: a.json\n    - issuer: https://a.example\n      audience: y\n      jwks_file: b.json\n', 'bearer.issuers[1].issuer', /listed twice/],
    ['unknown issuer key', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n      jwks_file: a.json\n      audiences: [y]\n', 'bearer.issuers[0].audiences', /unknown option; did you mean "audience"\?/],
    ['empty issuers', 'bearer:\n  issuers: []\n', 'bearer.issuers', /expected at least one issuer/],
    ['skew too large', 'bearer:\n  issuers:\n    - issuer: https://a.example\n      audience: x\n      jwks_file: a.json\n      clock_skew: 3600\n', 'bearer.issuers[0].clock_skew', /expected an integer from 0 to 300/],
    ['negative cooldown', 'bearer:\n  jwks_cooldown: -1\n  issuers:\n    - issuer: https://a.example\n      audience: x\n      jwks_file: a.json\n', 'bearer.jwks_cooldown', /expected an integer from 0 to 86400/],
    ['bad CIDR', 'listen:\n  trusted_proxies: [10.0.0.0/33]\n', 'listen.trusted_proxies', /"10\.0\.0\.0\/33" has prefix length "33", expected an integer from 0 to 32/],
    ['host name as proxy', 'listen:\n  trusted_proxies: [lb.hospital.example]\n', 'listen.trusted_proxies', /"lb\.hospital\.example" is not an IP address or CIDR range/],
    ['trust everyone', 'listen:\n  trusted_proxies: [0.0.0.0/0]\n', 'listen.trusted_proxies', /"0\.0\.0\.0\/0" would let every client forge X-Forwarded-For/],
    ['unknown assertion algorithm', 'assertion:\n  algorithm: RS256\n', 'assertion.algorithm', /expected one of ES256, ML-DSA-65, got "RS256"/],
  ];
  for (const [name, extra, option, message] of cases) {
    const found = issues(BASE + extra).find((issue) => issue.option === option);
    t.ok(found, `${name}: an issue names ${option}`);
    t.match(found?.message, message, `${name}: message`);
    t.ok((found?.line ?? 0) > 1 || option.endsWith('audience'), `${name}: line of the value`);
  }
});

t.test('bad route scopes and a CRL without client CA', async (t) => {
  const scope = issues(BASE.replace('    upstream: http://127.0.0.1:8080\n', '    upstream: http://127.0.0.1:8080\n    required_scopes: ["patient read"]\n'));
  t.match(scope.find((issue) => issue.option === 'routes[0].required_scopes')?.message, /scope "patient read" is not a valid OAuth scope token/);

  const crl = issues(BASE.replace('tls:\n', 'tls:\n  crl: devices.crl\n'));
  t.match(crl.find((issue) => issue.option === 'tls.crl')?.message, /a CRL applies only to client certificates; set tls.client_ca as well/);
});

t.test('router validates required_scopes', async (t) => {
  const route = { id: 'fhir', host: '*', path_prefix: '/fhir', upstream: 'http://127.0.0.1:8080', sensitivity: 'normal', fail_mode: { redis: 'closed', scorer: 'closed', idp: 'closed' } } as const;
  t.same(createRouter([{ ...route, required_scopes: ['patient.read'] }]).routes[0]!.required_scopes, ['patient.read']);
  t.throws(() => createRouter([{ ...route, required_scopes: ['patient read'] }]), { code: 'WG_ROUTING_INVALID_ROUTE', message: /Option routes\[0\]\.required_scopes is invalid: expected a list of OAuth scope tokens/ });
  t.throws(() => createRouter([{ ...route, required_scopes: 'patient.read' as unknown as string[] }]), { code: 'WG_ROUTING_INVALID_ROUTE' });
});

t.test('bearer section becomes identity options', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wgtest-bearer-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  writeFileSync(join(dir, 'idp-ca.pem'), pem);

  const config = parseConfig(BASE + `bearer:
  jwks_cooldown: 5
  issuers:
    - issuer: https://idp.hospital.example
      audience: wardgate-api
      jwks_uri: https://idp.hospital.example/jwks
      ca: idp-ca.pem
`, join(dir, 'wardgate.yaml'), ENV);
  const options = await bearerOptions(config.bearer!);
  t.same(options, {
    issuers: [{ issuer: 'https://idp.hospital.example', audience: 'wardgate-api', algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'], clock_skew_s: 30, jwks_uri: 'https://idp.hospital.example/jwks', ca: pem }],
    jwks_cooldown_s: 5,
    jwks_max_age_s: 3600,
  });

  const store = new MemoryKeyValueStore();
  t.teardown(() => store.close());
  const identity = { oidc: { issuer: 'https://idp.hospital.example', client_id: 'wardgate', client_secret: 'secret' }, session: { idle_timeout_s: 900, absolute_lifetime_s: 3600 }, store };
  t.doesNotThrow(() => assertIdentityOptions({ ...identity, bearer: options }));
  t.throws(() => assertIdentityOptions({ ...identity, bearer: { ...options, jwks_cooldown_s: -5 } }), { code: 'WG_AUTH_INVALID_OPTION', message: /Option "bearer\.jwks_cooldown_s" must be an integer number of seconds from 0 to 86400, received number -5/ });
  t.throws(() => assertIdentityOptions({ ...identity, bearer: { ...options, issuers: [{ ...options.issuers[0]!, clock_skew_s: 301 }] } }), { code: 'WG_AUTH_INVALID_OPTION', message: /bearer\.issuers\[0\]\.clock_skew_s/ });
});
