import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';

import t from 'tap';

import { issueClientCertificate, type PemKeyPair } from '../../certs/dev-certificates.ts';
import { issueCrl } from '../../certs/revocation.ts';
import { watchCrl, type CrlReloadEvent } from '../../proxy/tls/crl-watch.ts';
import { createTlsListener, getTlsFacts, type TlsListener } from '../../proxy/tls/listener.ts';
import { createTestCertificates } from './helpers.ts';
import { waitUntil } from '../wait.ts';

const certificates = await createTestCertificates(t);
const device = await issueClientCertificate(certificates.ca, 'ventilator-4', { uri: 'urn:hospital:device:ventilator-4' });

async function startListener(crl: string | undefined): Promise<TlsListener & { port: number }> {
  const listener = createTlsListener({
    key: certificates.server.key,
    cert: certificates.server.cert,
    ca: certificates.ca.cert,
    requestCert: true,
    ...(crl === undefined ? {} : { crl }),
  }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(getTlsFacts(req.socket as TLSSocket)));
  });
  const address: AddressInfo = await listener.listen(0, '127.0.0.1');
  return Object.assign(listener, { port: address.port });
}

interface Facts {
  readonly clientCertificate?: { san: string[] };
  readonly clientCertificateError?: string;
}

/** Sends one request over a fresh TLS connection, optionally resuming `session`. */
function request(port: number, client: PemKeyPair | undefined, session?: Buffer): Promise<{ facts: Facts; session: Buffer | undefined; reused: boolean }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certificates.ca.cert, ...(client ? { cert: client.cert, key: client.key } : {}), ...(session ? { session } : {}) }, () => {
      socket.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
    });
    socket.on('session', (value: Buffer) => {
      ticket = value;
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ facts: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Facts, session: ticket, reused: socket.isSessionReused() });
    });
    socket.on('error', reject);
  });
}

t.test('verified certificate gives the SAN facts', async (t) => {
  const listener = await startListener(await issueCrl(certificates.ca));
  t.teardown(() => listener.close());

  const { facts } = await request(listener.port, device);
  t.same(facts.clientCertificate?.san, ['URI:urn:hospital:device:ventilator-4', 'DNS:ventilator-4']);
  t.equal(facts.clientCertificateError, undefined);

  const anonymous = await request(listener.port, undefined);
  t.equal(anonymous.facts.clientCertificate, undefined, 'no certificate, no facts');
  t.equal(anonymous.facts.clientCertificateError, undefined, 'and no error');
});

t.test('setCrl revokes for new connections and resumed sessions', async (t) => {
  const listener = await startListener(await issueCrl(certificates.ca));
  t.teardown(() => listener.close());

  const first = await request(listener.port, device);
  t.ok(first.facts.clientCertificate, 'accepted before revocation');
  t.ok(first.session, 'the server issued a session ticket');

  const resumedBefore = await request(listener.port, device, first.session);
  t.ok(resumedBefore.reused, 'the ticket resumes while the CRL is unchanged');

  listener.setCrl(await issueCrl(certificates.ca, [device.cert]));

  const fresh = await request(listener.port, device);
  t.equal(fresh.facts.clientCertificateError, 'CERT_REVOKED');
  t.equal(fresh.facts.clientCertificate, undefined);

  const resumed = await request(listener.port, device, first.session);
  t.notOk(resumed.reused, 'the old ticket no longer resumes');
  t.equal(resumed.facts.clientCertificateError, 'CERT_REVOKED', 'so the resumed connection is verified against the new CRL');
});

t.test('setCrl rejects a broken CRL and keeps the old one', async (t) => {
  const listener = await startListener(await issueCrl(certificates.ca, [device.cert]));
  t.teardown(() => listener.close());

  t.throws(() => listener.setCrl('not pem'), { code: 'WG_TLS_INVALID_OPTION', message: /Option tls\.crl is invalid: expected PEM text/ });
  t.throws(() => listener.setCrl('-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n'), { code: 'WG_TLS_INVALID_OPTION', message: /Option tls\.crl is invalid: OpenSSL rejected it .*The previous CRL stays in force/ });
  t.equal((await request(listener.port, device)).facts.clientCertificateError, 'CERT_REVOKED');
});

t.test('CRL without a client CA is an invalid option', async (t) => {
  t.throws(() => createTlsListener({ key: certificates.server.key, cert: certificates.server.cert, crl: 'x' }, () => {}), { code: 'WG_TLS_INVALID_OPTION' });
  t.throws(() => createTlsListener({ key: certificates.server.key, cert: certificates.server.cert, crl: '-----BEGIN X509 CRL-----\n' }, () => {}), { code: 'WG_TLS_INVALID_OPTION', message: /tls\.crl is set without tls\.ca/ });
});

t.test('watchCrl reloads a replaced file and reports failures', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wgtest-crl-watch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'devices.crl');
  await writeFile(file, await issueCrl(certificates.ca));
  const listener = await startListener(await issueCrl(certificates.ca));
  t.teardown(() => listener.close());

  const events: CrlReloadEvent[] = [];
  let notify: (() => void) | undefined;
  const watcher = watchCrl(file, listener, (event) => {
    events.push(event);
    notify?.();
  }, 20);
  t.teardown(() => watcher.close());
  const nextEvent = () => new Promise<void>((resolve) => {
    notify = resolve;
  });

  let reloaded = nextEvent();
  await writeFile(join(dir, 'next.crl'), await issueCrl(certificates.ca, [device.cert]));
  await rename(join(dir, 'next.crl'), file);
  await reloaded;
  t.equal(events.at(-1)?.ok, true, 'the replaced file was installed');
  t.equal((await request(listener.port, device)).facts.clientCertificateError, 'CERT_REVOKED');

  reloaded = nextEvent();
  await writeFile(join(dir, 'broken.crl'), 'garbage');
  await rename(join(dir, 'broken.crl'), file);
  await reloaded;
  const failure = events.at(-1);
  t.equal(failure?.ok, false, 'a broken file is reported');
  t.match(failure && !failure.ok ? failure.error.message : '', /tls\.crl is invalid/);
  t.equal((await request(listener.port, device)).facts.clientCertificateError, 'CERT_REVOKED', 'the previous CRL stays in force');
});

t.test('watchCrl rejects a FIFO and recovers', { skip: process.platform === 'win32' && 'no FIFOs' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wgtest-crl-fifo-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'devices.crl');
  await writeFile(file, await issueCrl(certificates.ca, [device.cert]));
  const listener = await startListener(await issueCrl(certificates.ca, [device.cert]));
  t.teardown(() => listener.close());

  const events: CrlReloadEvent[] = [];
  let notify: (() => void) | undefined;
  const watcher = watchCrl(file, listener, (event) => {
    events.push(event);
    notify?.();
  }, 20);
  t.teardown(() => watcher.close());
  const nextEvent = () => new Promise<void>((resolve) => {
    notify = resolve;
  });

  const reloaded = nextEvent();
  await rm(file);
  execFileSync('mkfifo', [file]);
  t.teardown(() => {
    try {
      closeSync(openSync(file, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // ENXIO: no reader is waiting. ENOENT: the FIFO is gone.
    }
  });
  await reloaded;
  const failure = events.at(-1);
  t.equal(failure?.ok, false, 'the FIFO is reported');
  t.equal(failure && !failure.ok ? failure.error.message : '', `${file}: expected a regular file, got a FIFO; point tls.crl at a regular file`);
  t.equal((await request(listener.port, device)).facts.clientCertificateError, 'CERT_REVOKED', 'the previous CRL stays in force');

  // The rename replaces the FIFO in one step, so no poll finds the file missing in between.
  await writeFile(join(dir, 'next.crl'), await issueCrl(certificates.ca));
  await rename(join(dir, 'next.crl'), file);
  t.ok(await waitUntil(() => events.at(-1)?.ok === true), 'a regular file is installed again');
  t.equal((await request(listener.port, device)).facts.clientCertificateError, undefined);
});
