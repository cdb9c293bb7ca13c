import t from 'tap';
import { ConfigError } from '../../proxy/config/errors.ts';
import { parseConfig } from '../../proxy/config/config.ts';
import { parseCidr, TrustedHops } from '../../proxy/telemetry/trusted-hops.ts';

const ENV = { WARDGATE_OIDC_CLIENT_SECRET: 'secret', WARDGATE_PATIENT_KEY: 'ab'.repeat(32) };
const BASE = `listen: { port: 8443 }
tls: { cert: server.pem, key: server.key }
oidc: { issuer: "https://idp.example", client_id: wardgate }
policy: policy.yaml
model: model.onnx
routes:
  - { id: ehr, upstream: "http://127.0.0.1:9000" }
`;

function issuesOf(text: string): string[] {
  try {
    parseConfig(text, 'wardgate.yaml', ENV);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((issue) => `${issue.line}:${issue.column} ${issue.option}: ${issue.message}`);
    throw error;
  }
  return [];
}

t.test('telemetry section is optional', async (t) => {
  const config = parseConfig(BASE, 'wardgate.yaml', ENV);
  t.same(config.telemetry, { trusted_hops: [], prometheus: null });
});

t.test('telemetry section is read', async (t) => {
  const config = parseConfig(`${BASE}telemetry:\n  trusted_hops: [10.0.0.0/8, "fd00::/8", 192.0.2.7]\n  prometheus: { host: 0.0.0.0, port: 9464 }\n`, 'wardgate.yaml', ENV);
  t.same(config.telemetry, { trusted_hops: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'], prometheus: { host: '0.0.0.0', port: 9464 } });
  t.ok(Object.isFrozen(config.telemetry), 'the section is frozen');
});

t.test('prometheus defaults', async (t) => {
  const config = parseConfig(`${BASE}telemetry:\n  prometheus: {}\n`, 'wardgate.yaml', ENV);
  t.same(config.telemetry?.prometheus, { host: '127.0.0.1', port: 9464 });
});

const hostile: Array<[string, string, RegExp]> = [
  ['bad CIDR', 'telemetry:\n  trusted_hops: [10.0.0.0/33]\n', /^9:18 telemetry\.trusted_hops\[0\]: invalid CIDR: prefix length "33" must be an integer from 0 to 32/],
  ['not an address', 'telemetry:\n  trusted_hops: [gateway.local]\n', /telemetry\.trusted_hops\[0\]: invalid CIDR: "gateway\.local" is not an IPv4 or IPv6 address/],
  ['hops not a list', 'telemetry:\n  trusted_hops: 10.0.0.0/8\n', /telemetry\.trusted_hops: expected a list/],
  ['number hop', 'telemetry:\n  trusted_hops: [10]\n', /telemetry\.trusted_hops\[0\]: expected a non-empty string/],
  ['unknown key', 'telemetry:\n  prometheus_port: 9464\n', /telemetry\.prometheus_port: unknown option; did you mean "prometheus"\?/],
  ['port out of range', 'telemetry:\n  prometheus: { port: 70000 }\n', /telemetry\.prometheus\.port: expected an integer from 0 to 65535/],
  ['port of the public listener', 'telemetry:\n  prometheus: { port: 8443 }\n', /telemetry\.prometheus\.port: port 8443 is the public listener's port/],
  ['section not a map', 'telemetry: on\n', /telemetry: expected a mapping/],
];

for (const [name, section, message] of hostile) {
  t.test(`invalid telemetry: ${name}`, async (t) => {
    const issues = issuesOf(BASE + section);
    t.equal(issues.length, 1, issues.join('\n'));
    t.match(issues[0], message);
  });
}

t.test('CIDR parsing', async (t) => {
  t.same(parseCidr('10.1.0.0/16'), { ok: true, address: '10.1.0.0', prefix: 16, family: 'ipv4' });
  t.same(parseCidr('::1'), { ok: true, address: '::1', prefix: 128, family: 'ipv6' });
  t.equal(parseCidr('10.0.0.0/').ok, false);
  t.equal(parseCidr('10.0.0.0/-1').ok, false);
  t.equal(parseCidr('10.0.0.0/8/8').ok, false);
  t.equal(parseCidr('').ok, false);
});

t.test('trusted hops match addresses', async (t) => {
  const hops = new TrustedHops(['10.0.0.0/8', 'fd00::/8', '192.0.2.7']);

  t.ok(hops.has('10.20.30.40'));
  t.ok(hops.has('::ffff:10.20.30.40'), 'IPv4-mapped IPv6 addresses count as IPv4');
  t.ok(hops.has('fd12::1'));
  t.ok(hops.has('192.0.2.7'));
  t.notOk(hops.has('192.0.2.8'));
  t.notOk(hops.has('11.0.0.1'));
  t.notOk(hops.has('fe80::1'));
  t.notOk(hops.has(''));
  t.notOk(hops.has('not-an-ip'));
});

t.test('no trusted hops by default', async (t) => {
  const hops = new TrustedHops([]);
  t.notOk(hops.has('127.0.0.1'));
});

t.test('invalid hop is rejected', async (t) => {
  t.throws(() => new TrustedHops(['10.0.0.0/99']), { message: /Invalid trusted hop "10\.0\.0\.0\/99": prefix length "99"/ });
});
