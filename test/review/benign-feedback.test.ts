import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Span } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import t from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import { DEFAULT_OVERSIGHT_CONFIG } from '../../proxy/break-glass/config.ts';
import { Oversight } from '../../proxy/break-glass/oversight.ts';
import type { Principal } from '../../proxy/identity/principal.ts';
import type { PolicyPort } from '../../proxy/ports.ts';
import { runReviewCommand } from '../../proxy/review/cli.ts';
import { BenignPatterns, ReviewQueue } from '../../proxy/review/queue.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import { deletePrefix, REDIS_URL, testPrefix } from './helpers.ts';
import { waitUntil } from '../wait.ts';

const redis = new Redis(REDIS_URL);
const prefix = testPrefix();
const store = new MemoryKeyValueStore();
const queue = new ReviewQueue(redis, { prefix, maxLength: 1000 });
const log = pino({ level: 'silent' });
const oversight = new Oversight({
  store,
  config: DEFAULT_OVERSIGHT_CONFIG,
  patientKey: Buffer.alloc(32, 3),
  review: queue,
  benign: new BenignPatterns(redis, prefix),
  identity: { sendStepUp: () => undefined },
  now: () => 0,
  logger: log,
});
t.teardown(async () => {
  await store.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

/** Steps up above risk 0.6, as the demo policy does, and allows otherwise. */
const policy: PolicyPort = {
  hash: 'test',
  decide: (context: DecisionContext): Decision => context.risk >= 0.6
    ? { action: 'step_up', rule: 'step-up-unusual', reasons: ['unusual'], risk: context.risk, stepUp: { acr_values: 'urn:wardgate:acr:mfa', max_age: 0, ttl: 900 } }
    : { action: 'allow', rule: 'clinicians-allow', reasons: [], risk: context.risk },
};

const result: ScoreResult = {
  risk: 0.8,
  features: { new_ip: 1, off_hours: 1 },
  top: [{ name: 'new_ip', value: 1, contribution: 0.5 }, { name: 'off_hours', value: 1, contribution: 0.2 }],
  modelVersion: 'test',
};

/** Runs one request of `subject` through facts, policy, adjust and enforce, as the pipeline does. */
async function request(subject: string): Promise<Decision | null> {
  const principal: Principal = { subject, groups: ['clinicians'], method: 'bearer' };
  const facts = await oversight.facts(principal, 'ehr', result, 0, log);
  const context: DecisionContext = {
    principal,
    route: { id: 'ehr', host: '*', pathPrefix: '/', sensitivity: 'normal' },
    request: { method: 'GET', host: 'ehr.localhost', path: '/fhir/Patient/p-0001', ip: '127.0.0.1', queryParams: [] },
    risk: result.risk,
    features: result.features,
    tls: { protocol: 'TLSv1.3', group: 'X25519MLKEM768' },
    time: 0,
    ...facts,
  };
  const outcome = oversight.adjust(policy.decide(context), context, policy);
  const prepared = { ok: true as const, url: new URL('https://ehr.localhost/fhir/Patient/p-0001'), host: 'ehr.localhost', clientIp: '127.0.0.1', route: { id: 'ehr', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'normal' as const, fail_mode: { redis: 'closed' as const, scorer: 'closed' as const, idp: 'closed' as const } } };
  const span = { setAttribute: () => span } as unknown as Span;
  const req = { method: 'GET', headers: { accept: 'application/json' } } as unknown as IncomingMessage;
  return oversight.enforce({ req, res: {} as ServerResponse, prepared, principal, outcome, result, incidentId: '0'.repeat(32), span, now: 0 });
}

async function queuedFor(user: string): Promise<number> {
  const rows = await redis.xrange(queue.streamKey, '-', '+');
  return rows.filter(([, fields]) => (JSON.parse(fields[1]!) as { user: string }).user === user).length;
}

let markers = 0;

/** Waits until every entry enqueued so far is in the stream: a marker enqueued last arrives last. */
async function settle(): Promise<void> {
  const marker = `marker-${++markers}`;
  queue.enqueue({ kind: 'decision', time: 0, trace_id: marker, user: marker, groups: [], route: 'ehr', method: 'GET', path: '/', action: 'block', rule: 'marker', reasons: [], risk: 0, top_features: [] });
  while ((await queuedFor(marker)) === 0) await new Promise((resolve) => setImmediate(resolve));
}

t.test('benign label stops flagging that user only', async (t) => {
  t.equal((await request('demo-nurse'))?.action, 'step_up');
  t.equal((await request('demo-physician'))?.action, 'step_up');
  await settle();
  t.equal(await queuedFor('demo-nurse'), 1);
  t.equal(await queuedFor('demo-physician'), 1);

  const [[id]] = (await redis.xrange(queue.streamKey, '-', '+')) as Array<[string, string[]]>;
  const out = new PassThrough();
  const code = await runReviewCommand(['label', id!, 'benign', '--note', 'works from the satellite clinic', '--analyst', 'ana', '--redis', REDIS_URL, '--prefix', prefix], out, new PassThrough());
  t.equal(code, 0);

  const nurse = await request('demo-nurse');
  t.equal(nurse?.action, 'allow', 'the risk-driven step-up is waived');
  t.equal(nurse?.rule, 'clinicians-allow');
  t.match(nurse?.reasons.at(-1), /step-up by rule step-up-unusual waived because analysts labelled this pattern benign/);
  t.equal((await request('demo-physician'))?.action, 'step_up', 'another user with the same pattern still steps up');
  await settle();
  t.equal(await queuedFor('demo-nurse'), 1, 'the nurse is not flagged again');
  t.equal(await queuedFor('demo-physician'), 2, 'the physician is flagged again');
});

t.test('benign label does not waive a rule that ignores risk', async (t) => {
  const strict: PolicyPort = { hash: 'strict', decide: (context) => ({ action: 'step_up', rule: 'always-mfa', reasons: [], risk: context.risk, stepUp: { acr_values: 'urn:wardgate:acr:mfa', max_age: 0, ttl: 900 } }) };
  const context = { reviewedBenign: true, risk: 0.8 } as unknown as DecisionContext;
  const outcome = oversight.adjust(strict.decide(context), context, strict);
  t.equal(outcome.decision.action, 'step_up');
  t.equal(outcome.override, undefined);
});

t.test('Redis outage never fails the request', async (t) => {
  const dead = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  dead.on('error', () => {});
  const deadQueue = new ReviewQueue(dead, { prefix, maxLength: 100 });
  const offline = new Oversight({ store, config: DEFAULT_OVERSIGHT_CONFIG, patientKey: Buffer.alloc(32, 3), review: deadQueue, benign: new BenignPatterns(dead, prefix), identity: { sendStepUp: () => undefined }, now: () => 0, logger: log });
  const principal: Principal = { subject: 'demo-nurse', groups: [], method: 'bearer' };

  const facts = await offline.facts(principal, 'ehr', result, 0, log);
  t.same(facts, { breakGlassActive: false, reviewedBenign: false }, 'a failed benign lookup counts as not reviewed');
  const context = { principal, risk: 0.8, reviewedBenign: false } as unknown as DecisionContext;
  const outcome = offline.adjust(policy.decide(context), context, policy);
  const prepared = { ok: true as const, url: new URL('https://ehr.localhost/'), host: 'ehr.localhost', clientIp: '127.0.0.1', route: { id: 'ehr', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'normal' as const, fail_mode: { redis: 'closed' as const, scorer: 'closed' as const, idp: 'closed' as const } } };
  const span = { setAttribute: () => span } as unknown as Span;
  const req = { method: 'GET', headers: {} } as unknown as IncomingMessage;
  const decision = await offline.enforce({ req, res: {} as ServerResponse, prepared, principal, outcome, result, incidentId: '0'.repeat(32), span, now: 0 });

  t.equal(decision?.action, 'step_up', 'the request is decided as without the queue');
  while (deadQueue.failures < 1) await new Promise((resolve) => setImmediate(resolve));
  t.equal(deadQueue.failures, 1, 'the lost entry is counted');
  dead.disconnect();
});

t.test('unusable break-glass offer blocks', async (t) => {
  const principal: Principal = { subject: 'demo-nurse', groups: [], method: 'bearer' };
  const prepared = { ok: true as const, url: new URL('https://ehr.localhost/'), host: 'ehr.localhost', clientIp: '127.0.0.1', route: { id: 'ehr', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'normal' as const, fail_mode: { redis: 'closed' as const, scorer: 'closed' as const, idp: 'closed' as const } } };
  const span = { setAttribute: () => span } as unknown as Span;
  const req = { method: 'GET', headers: {} } as unknown as IncomingMessage;
  const cases = [{ ttl: 0, reason_codes: ['emergency_care'] }, { ttl: 600, reason_codes: [] }];

  for (const breakGlass of cases) {
    const decision: Decision = { action: 'break_glass', rule: 'broken-offer', reasons: [], risk: 0, breakGlass };
    const enforced = await oversight.enforce({ req, res: {} as ServerResponse, prepared, principal, outcome: { decision, reviewedBenign: false }, result: null, incidentId: '0'.repeat(32), span, now: 0 });
    t.equal(enforced?.action, 'block', JSON.stringify(breakGlass));
  }
});

t.test('hour limit spares high-risk escalations', async (t) => {
  const limitedQueue = new ReviewQueue(redis, { prefix: `${prefix}limit:`, maxLength: 1000, maxEntriesPerUserHour: 2 });
  const limited = new Oversight({ store, config: DEFAULT_OVERSIGHT_CONFIG, patientKey: Buffer.alloc(32, 3), review: limitedQueue, identity: { sendStepUp: () => undefined }, now: () => 0, logger: log });
  const principal: Principal = { subject: 'flooder', groups: [], method: 'bearer' };
  const prepared = { ok: true as const, url: new URL('https://ehr.localhost/'), host: 'ehr.localhost', clientIp: '127.0.0.1', route: { id: 'ehr', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'normal' as const, fail_mode: { redis: 'closed' as const, scorer: 'closed' as const, idp: 'closed' as const } } };
  const span = { setAttribute: () => span } as unknown as Span;
  const req = { method: 'GET', headers: {} } as unknown as IncomingMessage;

  for (const risk of [0.1, 0.1, 0.1, 0.95, 0.95]) {
    const decision: Decision = { action: 'block', rule: 'test-block', reasons: [], risk };
    await limited.enforce({ req, res: {} as ServerResponse, prepared, principal, outcome: { decision, reviewedBenign: false }, result: null, incidentId: '0'.repeat(32), span, now: 0 });
  }
  t.ok(await waitUntil(async () => (await redis.xlen(limitedQueue.streamKey)) === 4 && limitedQueue.limitedEntries === 1), 'two low-risk and both high-risk blocks are queued');
  const risks = (await redis.xrange(limitedQueue.streamKey, '-', '+')).map(([, fields]) => (JSON.parse(fields[1]!) as { risk: number }).risk).sort();
  t.same(risks, [0.1, 0.1, 0.95, 0.95]);
});
