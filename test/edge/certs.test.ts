import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t, { type Test } from 'tap';

import { runCertsDev } from '../../certs/cli.ts';
import { ensureDevCertificates, issueClientCertificate } from '../../certs/dev-certificates.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

async function temporaryDirectory(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wgtest-edge-certs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'certs');
}

function captureSink(): { write(text: string): boolean; text(): string } {
  const chunks: string[] = [];
  return { write: (text: string) => chunks.push(text) > 0, text: () => chunks.join('') };
}

t.test('ensureDevCertificates creates CA and server certificate', async (t) => {
  const dir = await temporaryDirectory(t);
  const certificates = await ensureDevCertificates(dir, ['localhost', 'EHR.localhost']);

  t.same(certificates.generated, { ca: true, server: true });
  t.same(certificates.hostnames, ['localhost', 'ehr.localhost', '127.0.0.1', '::1']);

  t.equal((await stat(dir)).mode & 0o777, 0o700);
  t.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600);
  t.equal((await stat(join(dir, 'server.key'))).mode & 0o777, 0o600);
  t.equal(await readFile(join(dir, 'server.crt'), 'utf8'), certificates.server.cert);

  const ca = new X509Certificate(certificates.ca.cert);
  const server = new X509Certificate(certificates.server.cert);
  t.equal(ca.ca, true);
  t.equal(server.ca, false);
  t.equal(server.checkIssued(ca), true);
  t.equal(server.verify(ca.publicKey), true);
  t.equal(server.subjectAltName, 'DNS:localhost, DNS:ehr.localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  t.same(server.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  t.equal(server.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const serverDays = Math.round((Date.parse(server.validTo) - Date.parse(server.validFrom)) / DAY_MS);
  const caDays = Math.round((Date.parse(ca.validTo) - Date.parse(ca.validFrom)) / DAY_MS);
  t.equal(serverDays, 90);
  t.equal(caDays, 5 * 365);
});

t.test('ensureDevCertificates reuses valid files', async (t) => {
  const dir = await temporaryDirectory(t);
  const first = await ensureDevCertificates(dir, ['localhost']);
  const second = await ensureDevCertificates(dir, ['LOCALHOST', '127.0.0.1']);

  t.same(second.generated, { ca: false, server: false });
  t.equal(second.ca.cert, first.ca.cert);
  t.equal(second.server.key, first.server.key);
});

t.test('ensureDevCertificates renews server certificate lacking a name', async (t) => {
  const dir = await temporaryDirectory(t);
  const first = await ensureDevCertificates(dir, ['localhost']);
  const second = await ensureDevCertificates(dir, ['localhost', 'lab.localhost']);

  t.same(second.generated, { ca: false, server: true });
  t.equal(second.ca.cert, first.ca.cert);
  t.not(second.server.cert, first.server.cert);
  t.equal(new X509Certificate(second.server.cert).checkHost('lab.localhost'), 'lab.localhost');
});

t.test('ensureDevCertificates renews server certificate near expiry', async (t) => {
  const dir = await temporaryDirectory(t);
  const start = Date.now();
  await ensureDevCertificates(dir, ['localhost'], { now: start });

  const in82Days = await ensureDevCertificates(dir, ['localhost'], { now: start + 82 * DAY_MS });
  t.same(in82Days.generated, { ca: false, server: false });

  const in84Days = await ensureDevCertificates(dir, ['localhost'], { now: start + 84 * DAY_MS });
  t.same(in84Days.generated, { ca: false, server: true });
});

t.test('ensureDevCertificates replaces broken files', async (t) => {
  const dir = await temporaryDirectory(t);
  const first = await ensureDevCertificates(dir, ['localhost']);

  await writeFile(join(dir, 'server.key'), 'not a key');
  const afterBrokenKey = await ensureDevCertificates(dir, ['localhost']);
  t.same(afterBrokenKey.generated, { ca: false, server: true });

  await writeFile(join(dir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\ntruncated');
  const afterBrokenCa = await ensureDevCertificates(dir, ['localhost']);
  t.same(afterBrokenCa.generated, { ca: true, server: true });
  t.not(afterBrokenCa.ca.cert, first.ca.cert);
  t.equal(new X509Certificate(afterBrokenCa.server.cert).checkIssued(new X509Certificate(afterBrokenCa.ca.cert)), true);
});

t.test('ensureDevCertificates rejects invalid host names', async (t) => {
  const dir = await temporaryDirectory(t);

  for (const name of ['bad host', 'under_score.localhost', '-leading.localhost', '', 'a'.repeat(254), 42 as unknown as string]) {
    await t.rejects(ensureDevCertificates(dir, [name]), { code: 'WG_CERTS_INVALID_HOSTNAME' }, JSON.stringify(name));
  }
});

t.test('issueClientCertificate signs clientAuth certificate', async (t) => {
  const dir = await temporaryDirectory(t);
  const { ca } = await ensureDevCertificates(dir, ['localhost']);
  const client = await issueClientCertificate(ca, 'Infusion-Pump-17');
  const cert = new X509Certificate(client.cert);

  t.equal(cert.subject, 'CN=infusion-pump-17');
  t.equal(cert.subjectAltName, 'DNS:infusion-pump-17');
  t.same(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  t.equal(cert.checkIssued(new X509Certificate(ca.cert)), true);
  await t.rejects(issueClientCertificate(ca, 'pump 17'), { code: 'WG_CERTS_INVALID_HOSTNAME' });
  await t.rejects(issueClientCertificate(ca, '127.0.0.1'), { code: 'WG_CERTS_INVALID_HOSTNAME' });
});

t.test('certs dev command', async (t) => {
  const dir = await temporaryDirectory(t);

  const help = { out: captureSink(), err: captureSink() };
  t.equal(await runCertsDev(['--help'], help.out, help.err), 0);
  t.match(help.out.text(), /^Usage: wardgate certs dev \[--dir DIR\] \[--host NAME\]\.\.\./);
  t.equal(help.err.text(), '');

  const badArguments: Array<[string[], string]> = [
    [['--bogus'], 'wardgate certs dev: unknown argument "--bogus"; expected --dir DIR, --host NAME or --help (see --help)\n'],
    [['--dir'], 'wardgate certs dev: option --dir requires a value (see --help)\n'],
    [['--host', '--dir', dir], 'wardgate certs dev: option --host requires a value (see --help)\n'],
    [['--dir', dir, '--dir=other'], 'wardgate certs dev: option --dir was given more than once (see --help)\n'],
  ];
  for (const [argv, message] of badArguments) {
    const sinks = { out: captureSink(), err: captureSink() };
    t.equal(await runCertsDev(argv, sinks.out, sinks.err), 2, argv.join(' '));
    t.equal(sinks.err.text(), message);
    t.equal(sinks.out.text(), '');
  }

  const badHost = { out: captureSink(), err: captureSink() };
  t.equal(await runCertsDev(['--dir', dir, '--host', 'not a host'], badHost.out, badHost.err), 2);
  t.equal(badHost.err.text().split('\n').length, 2);

  const created = { out: captureSink(), err: captureSink() };
  t.equal(await runCertsDev([`--dir=${dir}`, '--host', 'ehr.localhost'], created.out, created.err), 0);
  t.match(created.out.text(), `Server certificate: ${join(dir, 'server.crt')} (created)`);
  t.match(created.out.text(), 'Names covered:      ehr.localhost, 127.0.0.1, ::1');

  const reused = { out: captureSink(), err: captureSink() };
  t.equal(await runCertsDev(['--dir', dir, '--host', 'ehr.localhost'], reused.out, reused.err), 0);
  t.match(reused.out.text(), `Server certificate: ${join(dir, 'server.crt')} (reused)`);
});
