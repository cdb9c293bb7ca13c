import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { pino } from 'pino';
import t from 'tap';

import { Browser, rawRequest, signIn, startTestStack, type TestStack } from './support.ts';

const dir = mkdtempSync(join(tmpdir(), 'wgtest-shadow-'));
const activeFile = join(dir, 'active.yaml');
const candidateFile = join(dir, 'candidate.yaml');
writeFileSync(activeFile, 'version: 1\nrules:\n  - id: allow-signed-in\n    match: { authenticated: true }\n    action: allow\n');
writeFileSync(candidateFile, `version: 1
rules:
  - id: block-observations
    match: { paths: ["/fhir/Observation/**", "/fhir/Observation"] }
    action: block
  - id: allow-signed-in
    match: { authenticated: true }
    action: allow
`);

const logLines: Record<string, unknown>[] = [];
const logStream = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
    callback();
  },
});

let stack: TestStack;
let cookie: string;

t.before(async () => {
  stack = await startTestStack({ policyFile: activeFile, shadowPolicyFile: candidateFile, logger: pino({ level: 'info' }, logStream) });
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
});
t.teardown(async () => {
  await stack.close();
  rmSync(dir, { recursive: true, force: true });
});

t.test('candidate difference recorded, not enforced', async (t) => {
  stack.spans.reset();
  const response = await rawRequest(stack, '/fhir/Observation?patient=p-0001', { headers: { cookie, accept: 'application/json' } });

  t.equal(response.status, 200, 'the active policy allows; the candidate would block');
  const span = stack.spans.getFinishedSpans().find((candidate) => candidate.attributes['url.path'] === '/fhir/Observation');
  t.ok(span, 'the request has a span');
  t.equal(span?.attributes['wardgate.decision'], 'allow');
  t.equal(span?.attributes['wardgate.shadow.action'], 'block');
  t.equal(span?.attributes['wardgate.shadow.rule'], 'block-observations');

  const traceId = span!.spanContext().traceId;
  const logged = logLines.find((line) => line.msg === 'shadow policy decided differently' && line.trace_id === traceId);
  t.ok(logged, 'the difference is logged with the trace id');
  t.equal(logged?.shadow_rule, 'block-observations');
  t.equal(logged?.active_rule, 'allow-signed-in');
});

t.test('agreeing decision leaves span clean', async (t) => {
  stack.spans.reset();
  const response = await rawRequest(stack, '/fhir/Patient/p-0001', { headers: { cookie, accept: 'application/json' } });

  t.equal(response.status, 200);
  const span = stack.spans.getFinishedSpans().find((candidate) => String(candidate.attributes['url.path']).startsWith('/fhir/Patient/~'));
  t.ok(span);
  t.equal(span?.attributes['wardgate.shadow.action'], undefined);
});

t.test('health shows shadow counters per rule pair', async (t) => {
  const health = JSON.parse((await rawRequest(stack, '/.wardgate/health')).body) as {
    shadow_policy: { hash: string; last_reload_error: string | null; compared: number; differing: number; pairs: { activeRule: string; candidateRule: string; count: number }[] };
  };

  t.match(health.shadow_policy.hash, /^[0-9a-f]{64}$/);
  t.equal(health.shadow_policy.last_reload_error, null);
  t.ok(health.shadow_policy.compared >= 2, `compared ${health.shadow_policy.compared}`);
  t.equal(health.shadow_policy.differing, 1);
  t.same(health.shadow_policy.pairs.map((pair) => [pair.activeRule, pair.candidateRule, pair.count]), [['allow-signed-in', 'block-observations', 1]]);
});
