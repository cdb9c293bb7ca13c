import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import { PatientFieldPseudonymizer } from '../../proxy/audit/patient-fields.ts';
import { sha256 } from '../../proxy/break-glass/store.ts';
import type { AuditEntry, AuditPort, PolicyPort } from '../../proxy/ports.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { Browser, rawRequest, REDIS_URL, shortenGrant, signIn, startTestStack, waitForSpan, type TestStack } from './support.ts';
import type { BrowserResponse } from '../identity/helpers.ts';
import { waitUntil } from '../wait.ts';

// NOTE: the policy YAML reader does not parse notify and break_glass rules yet, so a stand-in
// policy returns those decisions by path.
const OFFER = { ttl: 600, reason_codes: ['emergency_care', 'continuity_of_care'] } as const;
const MFA = { acr_values: 'urn:wardgate:acr:mfa', max_age: 0, ttl: 900 };
const contexts: DecisionContext[] = [];
const standIn: PolicyPort = {
  hash: 'stand-in',
  decide(context: DecisionContext): Decision {
    contexts.push(context);
    const { path } = context.request;
    const risk = context.risk;
    if (path.startsWith('/fhir/Observation')) return { action: 'break_glass', rule: 'observations-break-glass', reasons: ['observations are restricted'], risk, breakGlass: OFFER };
    if (path === '/ws' && context.request.queryParams.includes('grant_only')) {
      return context.breakGlassActive === true ? { action: 'allow', rule: 'socket-with-grant', reasons: [], risk } : { action: 'block', rule: 'socket-without-grant', reasons: ['needs a grant'], risk };
    }
    if (path === '/ws' && context.request.queryParams.includes('restricted')) return { action: 'break_glass', rule: 'socket-break-glass', reasons: ['restricted stream'], risk, breakGlass: OFFER };
    if (path.startsWith('/fhir/Patient/') || path === '/ws') return { action: 'notify', rule: 'patient-notify', reasons: ['patient record'], risk };
    if (path.startsWith('/fhir/CareTeam') && !context.elevatedAcr?.includes(MFA.acr_values)) {
      return { action: 'step_up', rule: 'care-team-step-up', reasons: ['care team lists need a second factor'], risk, stepUp: MFA, breakGlass: OFFER };
    }
    return { action: 'allow', rule: 'allow-rest', reasons: [], risk };
  },
};
const audit: AuditEntry[] = [];
const auditPort: AuditPort = { append: (entry) => void audit.push(entry) };

let stack: TestStack;

t.before(async () => {
  stack = await startTestStack({ wardgateOptions: { policy: () => standIn, audit: auditPort } });
});
t.teardown(() => stack.close());

async function signedIn(username: string): Promise<Browser> {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, username);
  return browser;
}

function hidden(page: BrowserResponse, name: string): string {
  const value = new RegExp(`name="${name}" value="([^"]+)"`).exec(page.body)?.[1];
  if (value === undefined) throw new Error(`no hidden field ${name} in ${page.body.slice(0, 400)}`);
  return value;
}

async function reviewEntries(): Promise<Array<Record<string, unknown>>> {
  const redis = new Redis(REDIS_URL);
  try {
    const rows = await redis.xrange(`${stack.keyPrefix}review`, '-', '+');
    return rows.map(([, fields]) => JSON.parse(fields[1]!) as Record<string, unknown>);
  } finally {
    redis.disconnect();
  }
}

/** Sends a WebSocket upgrade with the browser's session cookie and returns the response head. */
async function upgrade(t: Test, browser: Browser, target: string): Promise<string> {
  return (await openUpgrade(t, browser, target)).head;
}

/** Sends a WebSocket upgrade with the browser's session cookie and returns the socket and the response head. */
async function openUpgrade(t: Test, browser: Browser, target: string): Promise<{ socket: tls.TLSSocket; head: string }> {
  const { port } = new URL(stack.url);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
  t.teardown(() => socket.destroy());
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nCookie: ${cookie}\r\n\r\n`);
  const head = await new Promise<Buffer>((resolve, reject) => socket.once('data', resolve).once('error', reject));
  return { socket, head: head.toString() };
}

const justification = 'Patient arrived unconscious in the emergency department; I am the treating nurse.';

t.test('break-glass page offers the reason codes', async (t) => {
  const browser = await signedIn('nurse');
  const page = await browser.request(`${stack.url}/fhir/Observation?patient=p-0001`);

  t.equal(page.status, 403);
  t.match(page.body, /<form method="post" action="\/.wardgate\/break-glass">/);
  t.match(page.body, /<option value="emergency_care">/);
  t.match(page.body, /<option value="continuity_of_care">/);
  t.match(page.body, /<textarea name="justification" required minlength="20" maxlength="1000"/);
  t.notMatch(page.body, /risk|observations-break-glass/, 'no policy internals on the page');
});

t.test('invalid claims grant nothing', async (t) => {
  const browser = await signedIn('nurse');
  const target = `${stack.url}/fhir/Observation?patient=p-0002`;
  const page = await browser.request(target);
  const offer = hidden(page, 'offer');
  const csrf = hidden(page, 'csrf');
  const claimUrl = `${stack.url}/.wardgate/break-glass`;
  const claimsBefore = audit.filter((entry) => entry.kind === 'break_glass').length;

  const badCsrf = await browser.request(claimUrl, { form: { offer, csrf: 'x'.repeat(43), reason_code: 'emergency_care', justification } });
  t.equal(badCsrf.status, 403);
  t.equal(badCsrf.headers['x-wardgate-error'], 'WG_BREAK_GLASS_CSRF_REJECTED');

  const unknownReason = await browser.request(claimUrl, { form: { offer, csrf, reason_code: 'curiosity', justification } });
  t.equal(unknownReason.status, 400);
  t.match(unknownReason.body, /Reason code &quot;curiosity&quot; is not accepted here; choose one of emergency_care, continuity_of_care\./);

  const short = await browser.request(claimUrl, { form: { offer, csrf, reason_code: 'emergency_care', justification: 'need it' } });
  t.equal(short.status, 400);
  t.match(short.body, /The justification has 6 visible characters; write 20 to 1000 characters/);

  const invisible = await browser.request(claimUrl, { form: { offer, csrf, reason_code: 'emergency_care', justification: '\u200b'.repeat(25) } });
  t.equal(invisible.status, 400, 'zero-width spaces are rejected in a form');
  const message = /<p class="error" role="alert">([^<]*)<\/p>/.exec(invisible.body)?.[1];
  t.equal(message, 'The justification contains the invisible or control character U+200B (at character 1); retype the justification as plain text instead of pasting it.');

  const missing = await browser.request(claimUrl, { form: { offer, csrf, reason_code: 'emergency_care' } });
  t.equal(missing.status, 400);

  const anonymous = new Browser(stack.certificates.ca.cert);
  const noSession = await anonymous.request(claimUrl, { form: { offer, csrf, reason_code: 'emergency_care', justification } });
  t.equal(noSession.status, 403);
  t.equal(noSession.headers['x-wardgate-error'], 'WG_BREAK_GLASS_NO_SESSION');

  const other = await signedIn('nurse');
  const otherSession = await other.request(claimUrl, { form: { offer, csrf, reason_code: 'emergency_care', justification } });
  t.equal(otherSession.status, 403, 'an offer is bound to the session it was shown to');
  t.equal(otherSession.headers['x-wardgate-error'], 'WG_BREAK_GLASS_CSRF_REJECTED');

  const get = await browser.request(claimUrl);
  t.equal(get.status, 405);

  const after = await browser.request(target);
  t.equal(after.status, 403, 'still blocked');
  t.equal(audit.filter((entry) => entry.kind === 'break_glass').length, claimsBefore, 'nothing audited as a claim');
});

t.test('valid browser claim grants access', async (t) => {
  const browser = await signedIn('nurse');
  const page = await browser.request(`${stack.url}/fhir/Observation?patient=p-0003`);
  const form = { offer: hidden(page, 'offer'), csrf: hidden(page, 'csrf'), reason_code: 'emergency_care', justification };

  const claimed = await browser.request(`${stack.url}/.wardgate/break-glass`, { form });
  t.equal(claimed.status, 303);
  t.equal(claimed.headers.location, '/fhir/Observation?patient=p-0003');
  const claimTrace = String(audit.at(-1)?.trace_id);
  t.match(audit.at(-1), { kind: 'break_glass', event: 'claim', user: 'demo-nurse', route: 'ehr', reason_code: 'emergency_care', justification, ttl: 600 });
  t.match(claimTrace, /^[0-9a-f]{32}$/);
  const pseudonym = new PatientPseudonymizer(stack.config.patient_key).pseudonymize('p-0003');
  const claimRecord = new PatientFieldPseudonymizer(stack.config.patient_key).apply(audit.at(-1)!);
  t.match(claimRecord, { path: `/fhir/Observation?patient=~${pseudonym}`, patients: [pseudonym] }, 'the claim record names the patient by pseudonym');
  t.equal(claimRecord.path_redacted, undefined, 'the claim path is not redacted');

  stack.spans.reset();
  const data = await browser.follow(claimed);
  t.equal(data.status, 200);
  t.match(JSON.parse(data.body), { resourceType: 'Bundle' });
  t.equal(contexts.at(-1)?.breakGlassActive, true, 'the policy sees the active grant');
  const span = stack.spans.getFinishedSpans().find((candidate) => candidate.attributes['wardgate.break_glass'] === true);
  t.ok(span, 'the span is marked wardgate.break_glass');
  t.equal(span?.attributes['wardgate.decision'], 'allow');
  t.match(audit.at(-1), { kind: 'break_glass', event: 'access', user: 'demo-nurse', route: 'ehr', trace_id: span?.spanContext().traceId });
  const accessRecord = new PatientFieldPseudonymizer(stack.config.patient_key).apply(audit.at(-1)!);
  t.match(accessRecord, { path: `/fhir/Observation?patient=~${pseudonym}`, patients: [pseudonym] }, 'the access record names the patient by pseudonym');
  t.equal(accessRecord.path_redacted, undefined, 'the access path is not redacted');

  const reused = await browser.request(`${stack.url}/.wardgate/break-glass`, { form });
  t.equal(reused.status, 403, 'an offer is used once');
  t.equal(reused.headers['x-wardgate-error'], 'WG_BREAK_GLASS_OFFER_UNKNOWN');

  const entries = await reviewEntries();
  const queued = entries.find((entry) => entry.kind === 'break_glass' && entry.trace_id === claimTrace);
  t.match(queued, { user: 'demo-nurse', route: 'ehr', action: 'break_glass', rule: 'observations-break-glass', break_glass: { reason_code: 'emergency_care', justification } });
  t.match(String(queued?.path), /^\/fhir\/Observation\?patient=~[0-9a-f]{32}$/, 'the patient id is pseudonymised');
});

t.test('a WebSocket upgrade under an active grant writes an access record', async (t) => {
  const browser = await signedIn('nurse');
  const page = await browser.request(`${stack.url}/fhir/Observation?patient=p-0011`);
  // Grants are per user and route, so an earlier test's claim may already be active.
  if (page.status === 403) {
    const form = { offer: hidden(page, 'offer'), csrf: hidden(page, 'csrf'), reason_code: 'emergency_care', justification };
    t.equal((await browser.request(`${stack.url}/.wardgate/break-glass`, { form })).status, 303);
  }
  t.equal((await browser.request(`${stack.url}/fhir/Observation?patient=p-0011`)).status, 200, 'the grant is active');

  stack.spans.reset();
  const head = await upgrade(t, browser, '/fhir/Observation?patient=p-0012');

  t.match(head, /^HTTP\/1\.1 404 /, 'the grant lets the upgrade through to the upstream, which has no socket there');
  // The upgrade's span ends when its socket closes.
  const span = await waitForSpan(stack, (candidate) => candidate.attributes['wardgate.break_glass'] === true);
  t.ok(span, 'the span is marked wardgate.break_glass');
  const access = audit.find((entry) => entry.kind === 'break_glass' && entry.event === 'access' && entry.trace_id === span?.spanContext().traceId);
  const pseudonym = new PatientPseudonymizer(stack.config.patient_key).pseudonymize('p-0012');
  t.match(access && new PatientFieldPseudonymizer(stack.config.patient_key).apply(access), { user: 'demo-nurse', route: 'ehr', path: `/fhir/Observation?patient=~${pseudonym}`, patients: [pseudonym] });
});

t.test('API client claims with JSON', async (t) => {
  const browser = await signedIn('clerk');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  const blocked = await rawRequest(stack, '/fhir/Observation?patient=p-0004', { headers: { cookie, accept: 'application/json' } });

  t.equal(blocked.status, 403);
  const body = JSON.parse(blocked.body) as { error: string; break_glass: { endpoint: string; reason_codes: string[]; offer: string; csrf: string } };
  t.equal(body.error, 'WG_BREAK_GLASS_REQUIRED');
  t.equal(body.break_glass.endpoint, '/.wardgate/break-glass');
  t.same(body.break_glass.reason_codes, OFFER.reason_codes);

  const post = (claim: Record<string, unknown>) => rawRequest(stack, '/.wardgate/break-glass', {
    method: 'POST',
    headers: { cookie, accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify(claim),
  });
  const missing = await post({ offer: body.break_glass.offer, csrf: body.break_glass.csrf, reason_code: 'continuity_of_care' });
  t.equal(missing.status, 400);
  t.equal(JSON.parse(missing.body).error, 'WG_BREAK_GLASS_INVALID_JUSTIFICATION');
  const wrongType = await post({ offer: body.break_glass.offer, csrf: body.break_glass.csrf, reason_code: 'continuity_of_care', justification: 42 });
  t.equal(JSON.parse(wrongType.body).error, 'WG_BREAK_GLASS_INVALID_BODY');

  for (const hidden of ['\u202e', '\u2028', '\ufffd', '\u0085']) {
    const disguised = await post({ offer: body.break_glass.offer, csrf: body.break_glass.csrf, reason_code: 'continuity_of_care', justification: `Ward transfer paperwork ${hidden}needs the latest observations.` });
    t.equal(disguised.status, 400, `U+${hidden.codePointAt(0)!.toString(16).padStart(4, '0')} is rejected`);
  }
  const granted = await post({ offer: body.break_glass.offer, csrf: body.break_glass.csrf, reason_code: 'continuity_of_care', justification: 'Ward transfer paperwork needs the latest observations tonight.' });
  t.equal(granted.status, 200);
  t.match(JSON.parse(granted.body), { granted: true, route: 'ehr', reason_code: 'continuity_of_care', return_to: '/fhir/Observation?patient=p-0004' });

  const allowed = await rawRequest(stack, '/fhir/Observation?patient=p-0004', { headers: { cookie, accept: 'application/json' } });
  t.equal(allowed.status, 200);
});

/** Characters that a rejection message must not repeat, because the reader cannot see them. */
const UNSEEN = /[\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{M}\u2800\u3164\u115f\u1160\uffa0]/u;

t.test('blank or invisible justifications grant nothing', async (t) => {
  const browser = await signedIn('physician');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  // Grants are per user and route, so a grant that an earlier test claimed is removed first.
  const redis = new Redis(REDIS_URL);
  t.teardown(() => redis.disconnect());
  const subject = stack.idp.accounts.find((account) => account.username === 'physician')!.subject;
  const grantKey = `${stack.keyPrefix}kv:bg:grant:${sha256(subject).slice(0, 32)}:${sha256('ehr').slice(0, 16)}`;
  await redis.del(grantKey);
  const blocked = await rawRequest(stack, '/fhir/Observation?patient=p-0015', { headers: { cookie, accept: 'application/json' } });
  t.equal(blocked.status, 403);
  const { offer, csrf } = (JSON.parse(blocked.body) as { break_glass: { offer: string; csrf: string } }).break_glass;
  const post = (justification: string) => rawRequest(stack, '/.wardgate/break-glass', {
    method: 'POST',
    headers: { cookie, accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify({ offer, csrf, reason_code: 'emergency_care', justification }),
  });
  const claimsBefore = audit.filter((entry) => entry.kind === 'break_glass' && entry.event === 'claim').length;
  const queuedBefore = (await reviewEntries()).filter((entry) => entry.kind === 'break_glass').length;

  const sentence = 'Patient collapsed on the ward and needs the latest results.';
  const cases: Array<[string, string, RegExp]> = [
    ['zero-width spaces', '\u200b'.repeat(25), /^The justification contains the invisible or control character U\+200B \(at character 1\)/],
    ['Braille blanks', '\u2800'.repeat(25), /character U\+2800 \(at character 1\)/],
    ['Hangul fillers', '\u3164'.repeat(25), /character U\+3164 /],
    ['Hangul choseong filler', `${sentence}\u115f`, /character U\+115F \(at character 60\)/],
    ['Hangul jungseong filler', `${sentence}\u1160`, /character U\+1160 /],
    ['halfwidth Hangul filler', `${sentence}\uffa0`, /character U\+FFA0 /],
    ['soft hyphens', '\u00ad'.repeat(25), /character U\+00AD /],
    ['word joiners', '\u2060'.repeat(25), /character U\+2060 /],
    ['Arabic letter mark', `Patient collapsed \u061con the ward and needs the results.`, /character U\+061C \(at character 19\)/],
    ['tag characters', `${sentence}\u{e0041}\u{e0042}\u{e0043}`, /character U\+E0041 \(at character 60\)/],
    ['byte order mark inside', `Patient collapsed\ufeff on the ward and needs the results.`, /character U\+FEFF /],
    ['private use character', `${sentence}\ue000`, /character U\+E000 /],
    ['unassigned code point', `${sentence}\u0378`, /character U\+0378 /],
    ['lone surrogate', `${sentence}\ud800`, /^The justification is not well-formed Unicode: it contains the unpaired surrogate U\+D800 \(at character 60\)/],
    ['combining marks', `a${'\u0301'.repeat(30)}`, /^The justification has 1 visible character; write 20 to 1000 characters/],
    ['spaced letters', 'a b c d e f g h i j k', /^The justification has 11 visible characters; write 20 to 1000 characters/],
    ['zero-width joiners', '\u200d'.repeat(25), /^The justification has 0 visible characters; write 20 to 1000 characters/],
    ['hidden text in variation selectors', `${sentence}\u{e0153}\u{e0165}\u{e0172}`, /character U\+E0153 \(at character 60\)/],
    ['a run of emoji selectors', `${sentence}\ufe0f\ufe0e`, /character U\+FE0F \(at character 60\)/],
    ['blank music symbols', '\u{1d159}'.repeat(20), /character U\+1D159 \(at character 1\)/],
    ['combining grapheme joiner', `${sentence}\u034f`, /character U\+034F /],
    ['Khmer inherent vowel', `${sentence}\u17b4`, /character U\+17B4 /],
  ];
  for (const [name, justification, expected] of cases) {
    const response = await post(justification);
    t.equal(response.status, 400, `${name}: status`);
    const body = JSON.parse(response.body) as { error: string; message: string };
    t.equal(body.error, 'WG_BREAK_GLASS_INVALID_JUSTIFICATION', `${name}: error code`);
    t.match(body.message, expected, `${name}: message`);
    t.notMatch(body.message, UNSEEN, `${name}: the message shows no invisible character`);
  }

  t.equal(audit.filter((entry) => entry.kind === 'break_glass' && entry.event === 'claim').length, claimsBefore, 'no claim is audited');
  t.equal((await reviewEntries()).filter((entry) => entry.kind === 'break_glass').length, queuedBefore, 'no claim is queued for review');
  t.equal((await rawRequest(stack, '/fhir/Observation?patient=p-0015', { headers: { cookie, accept: 'application/json' } })).status, 403, 'still blocked');

  // Line breaks, ordinary spaces, decomposed accents and a zero-width non-joiner inside a
  // Persian word stay allowed.
  const granted = await post('Patientin kollabiert auf Station.\nIch bin die behandelnde A\u0308rztin. \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u2764\ufe0f \u1820\u180e\u1821');
  t.equal(granted.status, 200, granted.body);
  // The later tests expect the physician to be blocked.
  await redis.del(grantKey);
});

t.test('notice shows once per patient', async (t) => {
  const browser = await signedIn('physician');
  const first = await browser.request(`${stack.url}/fhir/Patient/p-0002`);

  t.equal(first.status, 200);
  t.match(first.body, /This access is recorded/);
  t.match(first.body, /may be reviewed/);
  t.notMatch(first.body, /risk|patient-notify/, 'no score or rule on the notice');

  const acknowledged = await browser.submitForm(first, { offer: hidden(first, 'offer'), csrf: hidden(first, 'csrf') });
  t.equal(acknowledged.status, 303);
  t.match(audit.at(-1), { kind: 'notice_ack', user: 'demo-physician', route: 'ehr' });
  const record = await browser.follow(acknowledged);
  t.equal(record.status, 200);
  t.match(JSON.parse(record.body), { resourceType: 'Patient', id: 'p-0002' });
  t.match(String(record.headers['wardgate-notice']), /may be reviewed/);

  const again = await browser.request(`${stack.url}/fhir/Patient/p-0002`);
  t.match(JSON.parse(again.body), { resourceType: 'Patient' }, 'no second notice for the same patient');

  const otherPatient = await browser.request(`${stack.url}/fhir/Patient/p-0003`);
  t.match(otherPatient.body, /This access is recorded/, 'a new patient shows the notice again');
});

t.test('notice header for API clients', async (t) => {
  const browser = await signedIn('physician');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  const response = await rawRequest(stack, '/fhir/Patient/p-0005', { headers: { cookie, accept: 'application/json' } });

  t.equal(response.status, 200);
  t.match(JSON.parse(response.body), { resourceType: 'Patient', id: 'p-0005' });
  t.match(String(response.headers['wardgate-notice']), /^Access to this record is logged and may be reviewed/);
});

t.test('notify lets a WebSocket upgrade through', async (t) => {
  const browser = await signedIn('physician');
  const head = await upgrade(t, browser, '/ws');

  t.match(head, /^HTTP\/1\.1 101 /);
});

t.test('a refused WebSocket upgrade goes to the review stream', async (t) => {
  const browser = await signedIn('physician');
  const before = (await reviewEntries()).length;
  const head = await upgrade(t, browser, '/fhir/Observation?patient=p-0009');

  t.match(head, /^HTTP\/1\.1 403 /);
  const added = (await reviewEntries()).slice(before);
  t.equal(added.length, 1, 'one entry for the upgrade');
  t.match(added[0], { kind: 'decision', action: 'break_glass', rule: 'observations-break-glass', route: String });
  t.notMatch(JSON.stringify(added[0]), /p-0009/, 'no patient id in clear');
});

t.test('step-up page also offers break-glass', async (t) => {
  const browser = await signedIn('physician');
  const page = await browser.request(`${stack.url}/fhir/CareTeam?participant=dr-001`);

  t.equal(page.status, 403);
  t.match(page.body, /Verify with a second factor/);
  t.match(page.body, /Open emergency access/);
  const stepUp = await browser.request(`${stack.url}/.wardgate/break-glass`, { form: { offer: hidden(page, 'offer'), csrf: hidden(page, 'csrf'), choice: 'step_up' } });
  t.equal(stepUp.status, 302);
  const location = new URL(String(stepUp.headers.location));
  t.equal(location.origin, new URL(stack.idp.issuer).origin);
  t.equal(location.searchParams.get('acr_values'), 'urn:wardgate:acr:mfa');

  const claimed = await browser.request(`${stack.url}/.wardgate/break-glass`, { form: { offer: hidden(page, 'offer'), csrf: hidden(page, 'csrf'), reason_code: 'emergency_care', justification } });
  t.equal(claimed.status, 303);
  const data = await browser.follow(claimed);
  t.equal(data.status, 200);
});

t.test('health counts no lost review entries', async (t) => {
  const health = JSON.parse((await rawRequest(stack, '/.wardgate/health')).body) as { review: { failed_writes: number; limited_entries: number } };
  t.equal(health.review.failed_writes, 0);
  t.equal(health.review.limited_entries, 0, 'no user reached the hourly limit of review entries');
});

t.test('escalations go to the review stream', async (t) => {
  const entries = await reviewEntries();
  const breakGlassDecisions = entries.filter((entry) => entry.kind === 'decision' && entry.action === 'break_glass');
  t.ok(breakGlassDecisions.length >= 3, 'every shown break-glass block is queued');
  t.ok(entries.some((entry) => entry.action === 'step_up' && entry.rule === 'care-team-step-up'), 'step-ups are queued');
  for (const entry of entries) t.notMatch(JSON.stringify(entry), /p-000\d/, 'no patient id in clear');
});

/** Signs the nurse in, claims a grant on the route if none is active, and shortens it (`shortenGrant`). */
async function nurseWithShortGrant(t: Test, patient: string): Promise<Browser> {
  const browser = await signedIn('nurse');
  const page = await browser.request(`${stack.url}/fhir/Observation?patient=${patient}`);
  if (page.status === 403) {
    const form = { offer: hidden(page, 'offer'), csrf: hidden(page, 'csrf'), reason_code: 'emergency_care', justification };
    t.equal((await browser.request(`${stack.url}/.wardgate/break-glass`, { form })).status, 303);
  }

  await shortenGrant(t, stack, 'nurse');
  return browser;
}

/** Resolves true once `socket` closes, or false after 30 s. */
function closesWithin30s(socket: tls.TLSSocket): Promise<boolean> {
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  return Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30_000))]);
}

t.test('a WebSocket opened under a grant closes when the grant expires', async (t) => {
  const browser = await nurseWithShortGrant(t, 'p-0013');

  const { socket, head } = await openUpgrade(t, browser, '/ws?restricted=1');
  t.match(head, /^HTTP\/1\.1 101 /, 'the grant lets the WebSocket open');
  const closed = closesWithin30s(socket);

  await new Promise((resolve) => setTimeout(resolve, 1_000));
  t.equal(socket.destroyed, false, 'the socket stays open while the grant is active at its deadline');
  stack.clock.now += 1_000;
  t.ok(await closed, 'the socket closes once the grant has expired');
});

t.test('a WebSocket that a rule allows only under a grant closes at its expiry', async (t) => {
  const browser = await nurseWithShortGrant(t, 'p-0014');

  const grantOnly = await openUpgrade(t, browser, '/ws?grant_only=1');
  const ordinary = await openUpgrade(t, browser, '/ws');
  t.match(grantOnly.head, /^HTTP\/1\.1 101 /, 'the rule allows the WebSocket under the grant');
  t.match(ordinary.head, /^HTTP\/1\.1 101 /, 'a WebSocket that needs no grant opens too');
  const closed = closesWithin30s(grantOnly.socket);

  stack.clock.now += 1_000;
  t.ok(await closed, 'the grant-only socket closes once the grant has expired');
  t.equal(await waitUntil(() => ordinary.socket.destroyed, 2_000), false, 'the socket that needs no grant stays open');
});
