import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import t from 'tap';

import { ensureDevCertificates, issueClientCertificate, type PemKeyPair } from '../../certs/dev-certificates.ts';
import { issueCrl } from '../../certs/revocation.ts';
import { writeIdentityTestPolicy } from './identity-fixtures.ts';
import { rawRequest, startTestStack, type TestStack } from './support.ts';
import { waitUntil } from '../wait.ts';

const DEVICE_URI = 'urn:hospital:device:infusion-pump-17';

const dir = mkdtempSync(join(tmpdir(), 'wgtest-mtls-'));
const deviceCa = await ensureDevCertificates(join(dir, 'device-ca'), ['localhost']);
const crlFile = join(dir, 'devices.crl');
writeFileSync(crlFile, await issueCrl(deviceCa.ca));
const pump = await issueClientCertificate(deviceCa.ca, 'infusion-pump-17', { uri: DEVICE_URI });
const monitor = await issueClientCertificate(deviceCa.ca, 'bedside-monitor-3');
const strangerCa = await ensureDevCertificates(join(dir, 'stranger-ca'), ['localhost']);
const stranger = await issueClientCertificate(strangerCa.ca, 'rogue-device');

let stack: TestStack;
t.before(async () => {
  stack = await startTestStack({
    policyFile: writeIdentityTestPolicy(dir),
    crlPollMs: 50,
    configure: (config) => ({
      ...config,
      tls: { ...config.tls, client_ca: deviceCa.paths.caCert, crl: crlFile },
      assertion: { ...config.assertion, algorithm: 'ML-DSA-65' },
    }),
  });
});
t.teardown(async () => {
  await stack.close();
  rmSync(dir, { recursive: true, force: true });
});

interface DeviceResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

function deviceRequest(path: string, certificate: PemKeyPair | undefined, headers: Record<string, string> = {}): Promise<DeviceResponse> {
  return new Promise((resolve, reject) => {
    const request = https.request(`${stack.url}${path}`, {
      headers: { accept: 'application/json', ...headers },
      ca: stack.certificates.ca.cert,
      agent: false,
      ...(certificate ? { cert: certificate.cert, key: certificate.key } : {}),
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', reject);
    request.end();
  });
}

async function verifiedAssertion(body: string): Promise<Record<string, unknown>> {
  const assertion = (JSON.parse(body) as { headers: Record<string, string> }).headers['x-wardgate-assertion']!;
  const jwks = createLocalJWKSet(JSON.parse((await rawRequest(stack, '/.well-known/wardgate/jwks.json')).body) as JSONWebKeySet);
  const { payload } = await jwtVerify(assertion, jwks, { issuer: 'wardgate', audience: 'ehr', algorithms: ['ML-DSA-65'], currentDate: new Date(stack.clock.now) });
  return payload;
}

t.test('JWKS serves the ML-DSA-65 assertion key', async (t) => {
  const jwks = JSON.parse((await rawRequest(stack, '/.well-known/wardgate/jwks.json')).body) as JSONWebKeySet;
  t.equal(jwks.keys.length, 1);
  t.equal(jwks.keys[0]!.alg, 'ML-DSA-65');
  t.equal(jwks.keys[0]!.kty, 'AKP');
});

t.test('device certificate with a URI SAN is the principal', async (t) => {
  stack.spans.reset();
  const response = await deviceRequest('/debug/headers', pump);
  t.equal(response.status, 200);

  const payload = await verifiedAssertion(response.body);
  t.equal(payload.sub, DEVICE_URI, 'subject is the URI SAN');
  t.equal(payload.device, DEVICE_URI, 'device is the URI SAN');
  t.equal(payload.auth_method, 'mtls');

  const span = stack.spans.getFinishedSpans().find((candidate) => candidate.attributes['url.path'] === '/debug/headers');
  t.equal(span?.attributes['wardgate.auth.method'], 'mtls');
  t.equal(span?.attributes['wardgate.auth.device'], DEVICE_URI);
  t.equal(span?.attributes['wardgate.rule'], 'devices-allow', 'the policy saw method mtls and the device');
});

t.test('device certificate with only a DNS SAN uses the DNS name', async (t) => {
  const response = await deviceRequest('/debug/headers', monitor);
  t.equal(response.status, 200);
  const payload = await verifiedAssertion(response.body);
  t.equal(payload.sub, 'bedside-monitor-3');
  t.equal(payload.device, 'bedside-monitor-3');
});

t.test('certificate from another CA is rejected', async (t) => {
  const response = await deviceRequest('/debug/headers', stranger);
  t.equal(response.status, 403);
  t.equal(JSON.parse(response.body).error, 'WG_AUTH_CERTIFICATE_INVALID');
  t.match(JSON.parse(response.body).message, /Client certificate was rejected \(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
});

t.test('no certificate and no token gets the bearer challenge', async (t) => {
  const response = await deviceRequest('/debug/headers', undefined);
  t.equal(response.status, 401);
  t.equal(response.headers['www-authenticate'], 'Bearer realm="wardgate"');
});

t.test('revoked certificate is refused after the CRL reload, without a restart', async (t) => {
  t.equal((await deviceRequest('/debug/headers', pump)).status, 200, 'accepted before revocation');

  const temporary = `${crlFile}.tmp`;
  writeFileSync(temporary, await issueCrl(deviceCa.ca, [pump.cert]));
  renameSync(temporary, crlFile);

  // The watcher polls every 50 ms; wait for the new CRL to be in force, with a bound.
  let response = await deviceRequest('/debug/headers', pump);
  await waitUntil(async () => (response = await deviceRequest('/debug/headers', pump)).status !== 200, 30_000, 50);
  t.equal(response.status, 403, 'refused once the CRL is reloaded');
  t.equal(JSON.parse(response.body).error, 'WG_AUTH_CERTIFICATE_INVALID');
  t.match(JSON.parse(response.body).message, /CERT_REVOKED/);

  t.equal((await deviceRequest('/debug/headers', monitor)).status, 200, 'a device that is not revoked still passes');
});

t.test('broken CRL file keeps the previous CRL in force', async (t) => {
  const temporary = `${crlFile}.tmp`;
  writeFileSync(temporary, '-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n');
  renameSync(temporary, crlFile);
  await sleep(300);

  t.equal((await deviceRequest('/debug/headers', monitor)).status, 200, 'valid device still accepted');
  const revoked = await deviceRequest('/debug/headers', pump);
  t.equal(revoked.status, 403, 'revoked device still refused');
});
