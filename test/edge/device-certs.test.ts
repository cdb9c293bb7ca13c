import 'reflect-metadata';

import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as x509 from '@peculiar/x509';
import t from 'tap';

import { runDeviceCertsCommand } from '../../certs/device-cli.ts';
import { ensureDevCertificates, issueClientCertificate } from '../../certs/dev-certificates.ts';
import { issueCrl } from '../../certs/revocation.ts';

function sink(): { text: string; write(chunk: string): void } {
  return { text: '', write(chunk: string) { this.text += chunk; } };
}

const dir = await mkdtemp(join(tmpdir(), 'wgtest-device-certs-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const dev = await ensureDevCertificates(join(dir, 'certs'), ['localhost']);

t.test('client certificate with URI SAN', async (t) => {
  const pair = await issueClientCertificate(dev.ca, 'pump-17', { uri: 'urn:hospital:device:pump-17' });
  const cert = new X509Certificate(pair.cert);
  t.equal(cert.subjectAltName, 'URI:urn:hospital:device:pump-17, DNS:pump-17');
  t.ok(cert.checkIssued(new X509Certificate(dev.ca.cert)));
  await t.rejects(issueClientCertificate(dev.ca, 'pump-17', { uri: 'not a uri' }), { code: 'WG_CERTS_INVALID_OPTION', message: /URI "not a uri" is invalid/ });
});

t.test('CRL revokes exactly the listed certificates', async (t) => {
  const revoked = await issueClientCertificate(dev.ca, 'pump-1');
  const kept = await issueClientCertificate(dev.ca, 'pump-2');
  const pem = await issueCrl(dev.ca, [revoked.cert]);
  t.match(pem, /^-----BEGIN X509 CRL-----\n/, 'PEM label that OpenSSL reads');

  const crl = new x509.X509Crl(pem);
  t.equal(crl.entries.length, 1);
  t.equal(crl.entries[0]!.serialNumber, new x509.X509Certificate(revoked.cert).serialNumber);
  t.not(crl.entries[0]!.serialNumber, new x509.X509Certificate(kept.cert).serialNumber);
  t.ok(await crl.verify({ publicKey: await new x509.X509Certificate(dev.ca.cert).publicKey.export() }), 'signed by the CA');

  t.equal(new x509.X509Crl(await issueCrl(dev.ca)).entries.length, 0, 'an empty CRL revokes nothing');
});

t.test('CRL rejects a certificate of another CA', async (t) => {
  const other = await ensureDevCertificates(join(dir, 'other'), ['localhost']);
  const foreign = await issueClientCertificate(other.ca, 'rogue');
  await t.rejects(issueCrl(dev.ca, [foreign.cert]), { code: 'WG_CERTS_INVALID_OPTION', message: /Certificate 0 to revoke \(CN=rogue\) was not signed by this CA/ });
});

t.test('certs client and certs crl commands', async (t) => {
  const out = sink();
  const err = sink();
  t.equal(await runDeviceCertsCommand(['client', 'monitor-3', '--uri', 'urn:hospital:device:monitor-3', '--dir', dev.dir], out, err), 0, err.text);
  const certFile = join(dev.dir, 'clients', 'monitor-3.crt');
  const keyFile = join(dev.dir, 'clients', 'monitor-3.key');
  t.equal(new X509Certificate(await readFile(certFile)).subjectAltName, 'URI:urn:hospital:device:monitor-3, DNS:monitor-3');
  t.equal((await stat(keyFile)).mode & 0o777, 0o600, 'private key mode 0600');

  t.equal(await runDeviceCertsCommand(['crl', '--revoke', certFile, '--dir', dev.dir], out, err), 0, err.text);
  const crl = new x509.X509Crl(await readFile(join(dev.dir, 'ca.crl'), 'utf8'));
  t.equal(crl.entries[0]!.serialNumber, new x509.X509Certificate(await readFile(certFile, 'utf8')).serialNumber);
});

t.test('certs commands reject bad arguments', async (t) => {
  const cases: [string[], number, RegExp][] = [
    [['client', '--dir', dev.dir], 2, /expected one device NAME, received 0/],
    [['client', 'a', 'b', '--dir', dev.dir], 2, /expected one device NAME, received 2/],
    [['client', 'pump 1', '--dir', dev.dir], 2, /Client certificate name "pump 1" is invalid/],
    [['client', 'x', '--revoke', 'f'], 2, /unknown argument "--revoke"/],
    [['crl', 'extra', '--dir', dev.dir], 2, /unexpected argument "extra"/],
    [['crl', '--revoke', join(dir, 'missing.crt'), '--dir', dev.dir], 2, /certificate to revoke ".*missing\.crt" does not exist/],
    [['crl', '--dir', join(dir, 'empty')], 1, /No development CA in ".*empty" \(ca\.crt and ca\.key\)\. Run "wardgate certs dev --dir .*" first, or pass --dir with the folder of an existing CA\./],
    [['client', 'x', '--uri'], 2, /option --uri requires a value/],
  ];
  for (const [argv, code, message] of cases) {
    const err = sink();
    t.equal(await runDeviceCertsCommand(argv, sink(), err), code, `${argv.join(' ')}: exit code`);
    t.match(err.text, message, `${argv.join(' ')}: message`);
  }
});
