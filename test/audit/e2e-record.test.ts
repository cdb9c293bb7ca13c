import { SpanKind } from '@opentelemetry/api';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { rawRequest, signIn, startTestStack, Browser } from '../e2e/support.ts';
import { readLines, temporaryDir, trailFiles, verify } from './helpers.ts';

t.test('one record per decided request with pseudonymised patients', async (t) => {
  const state = temporaryDir('e2e');
  t.teardown(state.remove);
  const stack = await startTestStack({ stateDir: state.dir });
  let closed = false;
  t.teardown(() => (closed ? undefined : stack.close()));

  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  const patientId = 'p-0003';
  const read = await rawRequest(stack, `/fhir/Patient/${patientId}`, { headers: { cookie, accept: 'application/fhir+json' } });
  t.equal(read.status, 200);
  const search = await rawRequest(stack, `/fhir/Observation?patient=Patient/${patientId}`, { headers: { cookie, accept: 'application/fhir+json' } });
  t.equal(search.status, 200);
  const page = await rawRequest(stack, `/patients/${patientId}`, { headers: { cookie, accept: 'text/html' } });
  t.equal(page.status, 200);
  const rejected = await rawRequest(stack, '/fhir/Patient/p-0004', { headers: { authorization: 'Bearer not-a-jwt' } });
  t.equal(rejected.status, 401);
  const invalid = await rawRequest(stack, '/fhir/Patient/p-0005%2Fx');
  t.equal(invalid.status, 400);

  const upgradeHead = await anonymousUpgrade(stack.url, stack.certificates.ca.cert);
  t.match(upgradeHead, /^HTTP\/1\.1 401 /);

  const decidedSpans = stack.spans.getFinishedSpans().filter((span) => span.kind === SpanKind.SERVER && (span.attributes['wardgate.decision'] !== undefined || span.attributes['wardgate.auth.error'] !== undefined || span.attributes['http.response.status_code'] === 400));
  const readSpan = stack.spans.getFinishedSpans().find((span) => String(span.attributes['url.path']).startsWith('/fhir/Patient/~') && span.attributes['wardgate.decision'] === 'allow');
  await stack.close();
  closed = true;

  const auditDir = path.join(state.dir, 'audit');
  const text = trailFiles(auditDir).map((name) => readFileSync(path.join(auditDir, name), 'utf8')).join('');
  for (const id of ['p-0003', 'p-0004', 'p-0005']) t.notOk(text.includes(id), `patient id ${id} is absent from the trail`);

  const records = trailFiles(auditDir).flatMap((name) => readLines(path.join(auditDir, name)).map((line) => JSON.parse(line)));
  const decisions = records.filter((record) => record.kind === 'decision');
  const traceIds = decisions.map((record) => record.trace_id);
  t.equal(new Set(traceIds).size, traceIds.length, 'one record per request');
  for (const span of decidedSpans) t.ok(traceIds.includes(span.spanContext().traceId), `request ${span.attributes['url.path']} has a record`);

  const pseudonym = new PatientPseudonymizer(stack.config.patient_key).pseudonymize(patientId);
  const readRecord = decisions.find((record) => record.trace_id === readSpan?.spanContext().traceId);
  t.ok(readRecord, 'the FHIR read is recorded under its trace id');
  t.equal(readRecord?.path, `/fhir/Patient/~${pseudonym}`);
  t.same(readRecord?.patients, [pseudonym]);
  t.match(readRecord, {
    principal: { subject: String, method: 'session', groups: Array },
    client: { ip: '127.0.0.1' },
    route: 'ehr',
    method: 'GET',
    action: 'allow',
    rule: String,
    reasons: Array,
    risk: Number,
    policy_hash: String,
    model_version: String,
    tls: { group: 'X25519MLKEM768' },
  });
  t.equal(readRecord?.top.length, 3, 'the three top features are recorded');

  const searchRecord = decisions.find((record) => typeof record.path === 'string' && record.path.startsWith('/fhir/Observation'));
  t.equal(searchRecord?.path, `/fhir/Observation?patient=Patient/~${pseudonym}`);
  const pageRecord = decisions.find((record) => typeof record.path === 'string' && record.path.startsWith('/patients/'));
  t.equal(pageRecord?.path, `/patients/~${pseudonym}`);
  t.match(decisions.find((record) => record.rule === 'auth.rejected'), { action: 'block', principal: null });
  t.match(decisions.find((record) => record.rule === 'request.invalid'), { action: 'block', route: null, reasons: ['WG_HTTP_BAD_PATH'], path: '~redacted' });

  t.match(decisions.find((record) => record.path === '/ws'), { action: 'block', rule: 'auth.login_required', principal: null, reasons: ['WG_AUTH_REQUIRED'] });

  t.same((await verify(auditDir)).findings, []);
});

/** Sends a WebSocket upgrade without credentials and returns the status line of Wardgate's response. */
async function anonymousUpgrade(url: string, ca: string): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port), servername: 'localhost', ca });
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  socket.write(`GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  const head = await new Promise<string>((resolve, reject) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())).once('error', reject));
  socket.destroy();
  return head;
}
