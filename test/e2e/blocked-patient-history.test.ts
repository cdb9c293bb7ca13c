import { randomBytes } from 'node:crypto';
import tls from 'node:tls';

import t, { type Test } from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { PolicyPort } from '../../proxy/ports.ts';
import { Browser, rawRequest, signIn, startTestStack, type TestStack } from './support.ts';

const MFA = { acr_values: 'urn:wardgate:acr:mfa', max_age: 0, ttl: 900 };
const contexts: DecisionContext[] = [];
/** Paths the stand-in policy blocks or steps up once; every other request is allowed. */
const verdicts = new Map<string, 'block' | 'step_up' | 'break_glass'>();
const standIn: PolicyPort = {
  hash: 'stand-in',
  decide(context: DecisionContext): Decision {
    contexts.push(context);
    const verdict = verdicts.get(context.request.path);
    verdicts.delete(context.request.path);
    if (verdict === 'block') return { action: 'block', rule: 'test-block', reasons: ['blocked by the test'], risk: context.risk };
    if (verdict === 'break_glass') {
      return { action: 'break_glass', rule: 'test-break-glass', reasons: ['break-glass offered by the test'], risk: context.risk, breakGlass: { ttl: 3600, reason_codes: ['emergency'] } };
    }
    if (verdict === 'step_up') return { action: 'step_up', rule: 'test-step-up', reasons: ['stepped up by the test'], risk: context.risk, stepUp: MFA };
    return { action: 'allow', rule: 'allow-rest', reasons: [], risk: context.risk };
  },
};

let stack: TestStack;
let cookie: string;

t.before(async () => {
  stack = await startTestStack({ wardgateOptions: { policy: () => standIn } });
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
});
t.teardown(() => stack.close());

/** Requests `path` with the physician's session and returns the status and the features the policy saw. */
async function open(path: string): Promise<{ status: number; patientNew: number | undefined }> {
  const response = await rawRequest(stack, path, { headers: { cookie, accept: 'text/html' } });
  return { status: response.status, patientNew: contexts.at(-1)?.features.patient_new_for_user };
}

t.test('blocked patient stays new for the user', async (t) => {
  verdicts.set('/fhir/Patient/p-0011', 'block');

  const blocked = await open('/fhir/Patient/p-0011');
  const retry = await open('/fhir/Patient/p-0011');
  const again = await open('/fhir/Patient/p-0011');

  t.equal(blocked.status, 403);
  t.equal(blocked.patientNew, 1);
  t.not(retry.status, 403, 'the retry is allowed');
  t.equal(retry.patientNew, 1, 'the block did not add the patient to the history');
  t.equal(again.patientNew, 1, 'nor did the allowed retry: the patient stays withheld until a later day');
});

t.test('stepped-up patient is known after the upstream responds', async (t) => {
  verdicts.set('/fhir/Patient/p-0012', 'step_up');

  const steppedUp = await open('/fhir/Patient/p-0012');
  const retry = await open('/fhir/Patient/p-0012');
  const afterResponse = await open('/fhir/Patient/p-0012');

  t.equal(steppedUp.status, 302, 'the browser is sent to the IdP');
  t.equal(steppedUp.patientNew, 1);
  t.equal(retry.status, 200, 'the retry is allowed and forwarded');
  t.equal(retry.patientNew, 1, 'the step-up showed nothing, so the retry finds the patient new');
  t.equal(afterResponse.patientNew, 0, 'the upstream responded to the retry, so the history now explains the patient');
});

t.test('patient behind a break-glass offer stays new for the user', async (t) => {
  verdicts.set('/fhir/Patient/p-0013', 'break_glass');

  const offered = await rawRequest(stack, '/fhir/Patient/p-0013', { headers: { cookie, accept: 'text/html' } });
  const offeredNew = contexts.at(-1)?.features.patient_new_for_user;
  const retry = await open('/fhir/Patient/p-0013');

  t.match(offered.body, /break-glass|emergency/i, 'the offer page went out');
  t.not(offered.status, 200);
  t.equal(offeredNew, 1);
  t.equal(retry.patientNew, 1, 'the offer did not add the patient to the history');
});

/** Sends a WebSocket upgrade for `target` with the physician's session and returns the status line. */
async function upgrade(t: Test, target: string): Promise<string> {
  const { port } = new URL(stack.url);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
  t.teardown(() => socket.destroy());
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nCookie: ${cookie}\r\n\r\n`);
  const head = await new Promise<Buffer>((resolve, reject) => socket.once('data', resolve).once('error', reject));
  return head.toString('latin1').split('\r\n')[0]!;
}

t.test('WebSocket upgrades withhold or show their patients', async (t) => {
  // Only FHIR paths name patients, and the demo app responds to an upgrade there with 404.
  const known = await open('/fhir/Patient/p-0014');
  verdicts.set('/fhir/Patient/p-0014', 'block');
  const blocked = await upgrade(t, '/fhir/Patient/p-0014');
  const blockedNew = contexts.at(-1)?.features.patient_new_for_user;
  const afterBlock = await open('/fhir/Patient/p-0014');
  const allowed = await upgrade(t, '/fhir/Patient/p-0015');
  const afterUpgrade = await open('/fhir/Patient/p-0015');

  t.equal(known.status, 200);
  t.match(blocked, / 403 /);
  t.equal(blockedNew, 0, 'the upgrade named a patient the user knew');
  t.equal(afterBlock.patientNew, 1, 'a blocked upgrade withholds its patient');
  t.match(allowed, / 404 /, 'the upstream responded to the allowed upgrade');
  t.equal(afterUpgrade.patientNew, 0, 'so its patient counts as shown');
});

t.test('only the upstream responses count as denied', async (t) => {
  verdicts.set('/fhir/Patient/p-0016', 'block');
  const blocked = await open('/fhir/Patient/p-0016');
  const afterBlock = await open('/fhir/Patient/p-0001');
  const deniedAfterBlock = contexts.at(-1)?.features.denied_hour;
  const missing = await open('/fhir/Patient/p-9999');
  await open('/fhir/Patient/p-0001');
  const deniedAfterMissing = contexts.at(-1)?.features.denied_hour;

  t.equal(blocked.status, 403);
  t.equal(afterBlock.status, 200);
  t.equal(missing.status, 404, 'the upstream has no such patient');
  t.equal(deniedAfterBlock, 0, "Wardgate's own 403 pages count as no denied response");
  t.ok(deniedAfterMissing! > 0, `the upstream's 404 raises denied_hour (${deniedAfterMissing})`);
});
