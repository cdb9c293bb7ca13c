import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

import t from 'tap';

import { issueClientCertificate } from '../../certs/dev-certificates.ts';
import { createTlsListener, getTlsFacts } from '../../proxy/tls/listener.ts';
import { createTestCertificates, httpsGet } from './helpers.ts';

interface GroupCase {
  readonly client: string;
  readonly ecdhCurve?: string;
  readonly maxVersion?: 'TLSv1.2';
  readonly expected: string;
  readonly protocol: string;
}

async function startFactsListener(t: import('tap').Test, groups: string | undefined, requestCert = false) {
  const certificates = await createTestCertificates(t);
  const listener = createTlsListener(
    { key: certificates.server.key, cert: certificates.server.cert, ca: certificates.ca.cert, requestCert, groups },
    (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(getTlsFacts(req.socket as TLSSocket)));
    },
  );
  const address: AddressInfo = await listener.listen(0, '127.0.0.1');
  t.teardown(() => listener.close());

  return { certificates, port: address.port };
}

const plainListCases: GroupCase[] = [
  { client: 'only X25519MLKEM768', ecdhCurve: 'X25519MLKEM768', expected: 'X25519MLKEM768', protocol: 'TLSv1.3' },
  { client: 'only X25519', ecdhCurve: 'X25519', expected: 'X25519', protocol: 'TLSv1.3' },
  { client: 'only P-256', ecdhCurve: 'P-256', expected: 'P-256', protocol: 'TLSv1.3' },
  { client: 'default Node client', expected: 'X25519MLKEM768', protocol: 'TLSv1.3' },
  { client: 'X25519 share, hybrid listed', ecdhCurve: 'X25519:X25519MLKEM768', expected: 'X25519', protocol: 'TLSv1.3' },
  { client: 'P-256 share, hybrid listed', ecdhCurve: 'P-256:X25519MLKEM768', expected: 'P-256', protocol: 'TLSv1.3' },
  { client: 'unsupported share, HelloRetryRequest', ecdhCurve: 'P-384:P-256', expected: 'P-256', protocol: 'TLSv1.3' },
  { client: 'two shares, server order wins', ecdhCurve: '*P-256:*X25519', expected: 'X25519', protocol: 'TLSv1.3' },
  { client: 'TLS 1.2 default', maxVersion: 'TLSv1.2', expected: 'X25519', protocol: 'TLSv1.2' },
  { client: 'TLS 1.2 prefers P-256', ecdhCurve: 'P-256:X25519', maxVersion: 'TLSv1.2', expected: 'X25519', protocol: 'TLSv1.2' },
  { client: 'TLS 1.2 only P-256', ecdhCurve: 'P-256', maxVersion: 'TLSv1.2', expected: 'P-256', protocol: 'TLSv1.2' },
];

const tupleListCases: GroupCase[] = [
  { client: 'X25519 share, hybrid listed', ecdhCurve: 'X25519:X25519MLKEM768', expected: 'X25519MLKEM768', protocol: 'TLSv1.3' },
  { client: 'P-256 share, hybrid listed', ecdhCurve: 'P-256:X25519MLKEM768', expected: 'X25519MLKEM768', protocol: 'TLSv1.3' },
  { client: 'default Node client', expected: 'X25519MLKEM768', protocol: 'TLSv1.3' },
  { client: 'only X25519', ecdhCurve: 'X25519', expected: 'X25519', protocol: 'TLSv1.3' },
  { client: 'two shares in second tuple', ecdhCurve: '*P-256:*X25519', expected: 'X25519', protocol: 'TLSv1.3' },
  { client: 'TLS 1.2 with hybrid listed', ecdhCurve: 'X25519MLKEM768:P-256', maxVersion: 'TLSv1.2', expected: 'P-256', protocol: 'TLSv1.2' },
];

for (const [groups, cases] of [[undefined, plainListCases], ['X25519MLKEM768/X25519:P-256', tupleListCases]] as const) {
  t.test(`server group matches client view with ${groups ?? 'default groups'}`, async (t) => {
    const { certificates, port } = await startFactsListener(t, groups);

    for (const testCase of cases) {
      const result = await httpsGet(port, '/', {
        ca: certificates.ca.cert,
        ...(testCase.ecdhCurve === undefined ? {} : { ecdhCurve: testCase.ecdhCurve }),
        ...(testCase.maxVersion === undefined ? {} : { maxVersion: testCase.maxVersion }),
      });
      const facts = JSON.parse(result.body);

      t.equal(result.status, 200, `${testCase.client}: status`);
      t.equal(result.clientGroup, testCase.expected, `${testCase.client}: client view`);
      t.equal(facts.group, result.clientGroup, `${testCase.client}: server matches client`);
      t.equal(facts.protocol, testCase.protocol, `${testCase.client}: protocol`);
      t.equal(result.clientProtocol, testCase.protocol, `${testCase.client}: client protocol`);
    }
  });
}

t.test('client certificate facts', async (t) => {
  const { certificates, port } = await startFactsListener(t, undefined, true);
  const device = await issueClientCertificate(certificates.ca, 'infusion-pump-17');

  const withCertificate = await httpsGet(port, '/', { ca: certificates.ca.cert, key: device.key, cert: device.cert });
  const facts = JSON.parse(withCertificate.body);
  t.equal(facts.clientCertificate.subject, 'CN=infusion-pump-17');
  t.same(facts.clientCertificate.san, ['DNS:infusion-pump-17']);
  t.match(facts.clientCertificate.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

  const withoutCertificate = await httpsGet(port, '/', { ca: certificates.ca.cert });
  t.equal(withoutCertificate.status, 200);
  t.equal(JSON.parse(withoutCertificate.body).clientCertificate, undefined);

  const otherCa = await createTestCertificates(t);
  const untrusted = await issueClientCertificate(otherCa.ca, 'rogue-device');
  const withUntrusted = await httpsGet(port, '/', { ca: certificates.ca.cert, key: untrusted.key, cert: untrusted.cert });
  t.equal(JSON.parse(withUntrusted.body).clientCertificate, undefined);
});

t.test('createTlsListener rejects invalid options', async (t) => {
  const certificates = await createTestCertificates(t);
  const base = { key: certificates.server.key, cert: certificates.server.cert };
  const noop = () => {};

  t.throws(() => createTlsListener({ ...base, groups: 'X25519:P-999' }, noop), { code: 'WG_TLS_INVALID_OPTION', message: /tls\.groups.*unknown group "P-999"/ });
  t.throws(() => createTlsListener({ ...base, groups: '' }, noop), { code: 'WG_TLS_INVALID_OPTION', message: /tls\.groups/ });
  t.throws(() => createTlsListener({ ...base, key: 'not pem' }, noop), { code: 'WG_TLS_INVALID_OPTION', message: /tls\.key/ });
  t.throws(() => createTlsListener({ ...base, cert: undefined as unknown as string }, noop), { code: 'WG_TLS_INVALID_OPTION', message: /tls\.cert/ });
  t.throws(() => createTlsListener({ ...base, helloTimeoutMs: 0 }, noop), { code: 'WG_TLS_INVALID_OPTION', message: /tls\.helloTimeoutMs/ });
  t.throws(() => createTlsListener({ ...base, key: certificates.ca.key }, noop), { code: 'WG_TLS_INVALID_OPTION' });
});
