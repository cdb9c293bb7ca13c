import type { IncomingMessage } from 'node:http';

import t from 'tap';

import { createTrustedProxies, parseCidr, resolveForwardedOrigin, type Cidr } from '../../proxy/http/trusted-proxies.ts';

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
}

const trusted = createTrustedProxies([cidr('10.0.0.0/8'), cidr('2001:db8::/32')]);

/** A request with the given raw header pairs; only `rawHeaders` is read. */
function request(...pairs: [string, string][]): IncomingMessage {
  return { rawHeaders: pairs.flat() } as unknown as IncomingMessage;
}

t.test('untrusted peer: forwarded headers are ignored', async (t) => {
  const origin = resolveForwardedOrigin(request(['X-Forwarded-For', '198.51.100.9'], ['X-Forwarded-Host', 'evil.example'], ['X-Forwarded-Proto', 'http']), '203.0.113.5', 'ehr.example', trusted);
  t.same(origin, { clientIp: '203.0.113.5', proto: 'https', host: 'ehr.example', chain: ['203.0.113.5'] });
});

t.test('no trusted proxies configured: forwarded headers are ignored', async (t) => {
  const origin = resolveForwardedOrigin(request(['X-Forwarded-For', '198.51.100.9']), '10.0.0.1', 'ehr.example', undefined);
  t.equal(origin.clientIp, '10.0.0.1');
});

t.test('trusted peer: right-most untrusted address is the client', async (t) => {
  const origin = resolveForwardedOrigin(request(['X-Forwarded-For', '6.6.6.6, 198.51.100.9, 10.1.1.1'], ['X-Forwarded-Proto', 'http'], ['X-Forwarded-Host', 'EHR.Hospital.example:8443']), '10.0.0.1', 'internal', trusted);
  t.same(origin, { clientIp: '198.51.100.9', proto: 'http', host: 'ehr.hospital.example:8443', chain: ['198.51.100.9', '10.1.1.1', '10.0.0.1'] });
});

t.test('trusted peer: repeated headers are read in order', async (t) => {
  const origin = resolveForwardedOrigin(request(['X-Forwarded-For', '6.6.6.6'], ['x-forwarded-for', '198.51.100.9'], ['X-Forwarded-Proto', 'http, https']), '10.0.0.1', 'h', trusted);
  t.equal(origin.clientIp, '198.51.100.9');
  t.equal(origin.proto, 'https', 'the last proto value wins');
});

t.test('trusted peer: every hop trusted gives the left-most', async (t) => {
  const origin = resolveForwardedOrigin(request(['X-Forwarded-For', '10.2.2.2, 10.3.3.3']), '10.0.0.1', 'h', trusted);
  t.equal(origin.clientIp, '10.2.2.2');
});

t.test('trusted peer: ports and IPv6 brackets are removed', async (t) => {
  t.equal(resolveForwardedOrigin(request(['X-Forwarded-For', '198.51.100.9:5555']), '10.0.0.1', 'h', trusted).clientIp, '198.51.100.9');
  t.equal(resolveForwardedOrigin(request(['X-Forwarded-For', '[2001:db9::1]:443']), '10.0.0.1', 'h', trusted).clientIp, '2001:db9::1');
  t.equal(resolveForwardedOrigin(request(['X-Forwarded-For', '2001:db9::1']), '2001:db8::5', 'h', trusted).clientIp, '2001:db9::1');
});

t.test('trusted peer: hostile values fall back to the socket', async (t) => {
  const cases: [string, [string, string][]][] = [
    ['not an address', [['X-Forwarded-For', 'unknown']]],
    ['script', [['X-Forwarded-For', '<script>']]],
    ['one bad hop among good ones', [['X-Forwarded-For', '198.51.100.9, 1.2.3']]],
    ['empty', [['X-Forwarded-For', ' , ']]],
  ];
  for (const [name, pairs] of cases) {
    t.equal(resolveForwardedOrigin(request(...pairs), '10.0.0.1', 'h', trusted).clientIp, '10.0.0.1', name);
  }
});

t.test('trusted peer: underscore spellings are not read', async (t) => {
  const origin = resolveForwardedOrigin(request(['X_Forwarded_For', '6.6.6.6'], ['X-Forwarded-For', '198.51.100.9'], ['X_Forwarded_Host', 'evil.example']), '10.0.0.1', 'ehr.example', trusted);
  t.equal(origin.clientIp, '198.51.100.9');
  t.equal(origin.host, 'ehr.example');
});

t.test('trusted peer: invalid host and proto are not believed', async (t) => {
  const origin = resolveForwardedOrigin(request(['X-Forwarded-For', '198.51.100.9'], ['X-Forwarded-Host', 'evil.example/path'], ['X-Forwarded-Proto', 'gopher']), '10.0.0.1', 'ehr.example', trusted);
  t.equal(origin.host, 'ehr.example');
  t.equal(origin.proto, 'https');
});

t.test('parseCidr rejects malformed ranges', async (t) => {
  for (const text of ['10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0/8', 'fd00::/129', '10.0.0.0/1e1', '', 'localhost']) {
    t.ok('error' in parseCidr(text), JSON.stringify(text));
  }
  t.same(parseCidr('192.0.2.1'), { address: '192.0.2.1', prefix: 32, family: 'ipv4' });
  t.same(parseCidr('fd00::/8'), { address: 'fd00::', prefix: 8, family: 'ipv6' });
});
