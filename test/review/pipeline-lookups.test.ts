import type { IncomingMessage } from 'node:http';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import t from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import { DEFAULT_OVERSIGHT_CONFIG } from '../../proxy/break-glass/config.ts';
import { Oversight } from '../../proxy/break-glass/oversight.ts';
import type { Principal } from '../../proxy/identity/principal.ts';
import { evaluate, type PipelineDependencies } from '../../proxy/pipeline/request-handler.ts';
import type { AuthResult, PolicyPort } from '../../proxy/ports.ts';
import { patternOf } from '../../proxy/review/entry.ts';
import { BenignPatterns, type LabelRecord } from '../../proxy/review/queue.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import { deletePrefix, REDIS_URL, testPrefix } from './helpers.ts';

const redis = new Redis(REDIS_URL);
const prefix = testPrefix();
const store = new MemoryKeyValueStore();
const log = pino({ level: 'silent' });

/** The real benign label store, counting its lookups. */
class CountingBenignPatterns extends BenignPatterns {
  lookups = 0;

  override async isAccepted(user: string, pattern: string): Promise<boolean> {
    this.lookups++;
    return super.isAccepted(user, pattern);
  }
}

const benign = new CountingBenignPatterns(redis, prefix);
const oversight = new Oversight({
  store,
  config: DEFAULT_OVERSIGHT_CONFIG,
  patientKey: Buffer.alloc(32, 3),
  benign,
  identity: { sendStepUp: () => undefined },
  now: () => 0,
  logger: log,
});
t.teardown(async () => {
  await store.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const contexts: DecisionContext[] = [];
/** Steps up at risk 0.6 or more, allows under an active grant or at lower risk, as a policy with break-glass would. */
const policy: PolicyPort = {
  hash: 'test',
  decide: (context: DecisionContext): Decision => {
    contexts.push(context);
    if (context.breakGlassActive === true) return { action: 'allow', rule: 'break-glass-allow', reasons: [], risk: context.risk };
    if (context.risk >= 0.6) return { action: 'step_up', rule: 'step-up-unusual', reasons: ['unusual'], risk: context.risk, stepUp: { acr_values: 'urn:wardgate:acr:mfa', max_age: 0, ttl: 900 } };
    return { action: 'allow', rule: 'clinicians-allow', reasons: [], risk: context.risk };
  },
};

const label: LabelRecord = { entry_id: '1733340000000-0', label: 'benign', note: 'works from the satellite clinic', analyst: 'ana', labelled_at: 0 };
const route = { id: 'ehr', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'normal' as const, fail_mode: { redis: 'closed' as const, scorer: 'closed' as const, idp: 'closed' as const } };
const prepared = { ok: true as const, url: new URL('https://ehr.localhost/fhir/Patient/p-0001'), host: 'ehr.localhost', clientIp: '127.0.0.1', route };
const req = { method: 'GET', headers: { accept: 'application/json' } } as unknown as IncomingMessage;

function resultAt(risk: number): ScoreResult {
  return { risk, features: { new_ip: 1 }, top: [{ name: 'new_ip', value: 1, contribution: 0.5 }], modelVersion: 'test' };
}

/** Runs `evaluate` from the request pipeline for `subject` with a scorer that returns `risk`. */
async function evaluateAt(subject: string, risk: number) {
  const principal: Principal = { subject, groups: ['clinicians'], method: 'bearer' };
  const auth: AuthResult = { kind: 'authenticated', principal, elevatedAcr: [] };
  const deps = { scorer: { score: async () => resultAt(risk) }, policy: () => policy, oversight } as unknown as PipelineDependencies;
  return evaluate(deps, req, prepared, auth, { protocol: 'TLSv1.3', group: 'X25519MLKEM768' }, 0, log);
}

t.test('allow below threshold skips benign lookup', async (t) => {
  benign.lookups = 0;
  const { decision, outcome } = await evaluateAt('demo-nurse', 0.2);

  t.equal(decision.action, 'allow');
  t.equal(benign.lookups, 0);
  t.equal(outcome?.reviewedBenign, false);
});

t.test('benign label waives risk step-up', async (t) => {
  benign.lookups = 0;
  t.equal((await evaluateAt('demo-physician', 0.8)).decision.action, 'step_up', 'without a label the policy steps up');
  t.equal(benign.lookups, 1);

  await benign.accept('demo-physician', patternOf('ehr', resultAt(0.8).top), 60, label);
  const { decision, outcome } = await evaluateAt('demo-physician', 0.8);

  t.equal(decision.action, 'allow');
  t.equal(outcome?.override, 'reviewed_benign');
  t.equal(outcome?.reviewedBenign, true);
  t.equal(benign.lookups, 2);
});

t.test('risk at review threshold looks up label', async (t) => {
  await benign.accept('demo-pharmacist', patternOf('ehr', resultAt(0.8).top), 60, label);
  benign.lookups = 0;
  // An allow at the review threshold is queued for review unless the pattern was labelled benign.
  const allowAtThreshold: PolicyPort = { hash: 'test', decide: (context) => ({ action: 'allow', rule: 'allow-all', reasons: [], risk: context.risk }) };
  const principal: Principal = { subject: 'demo-pharmacist', groups: ['clinicians'], method: 'bearer' };
  const deps = { scorer: { score: async () => resultAt(0.8) }, policy: () => allowAtThreshold, oversight } as unknown as PipelineDependencies;
  const { outcome } = await evaluate(deps, req, prepared, { kind: 'authenticated', principal, elevatedAcr: [] }, { protocol: 'TLSv1.3', group: 'X25519MLKEM768' }, 0, log);

  t.equal(benign.lookups, 1);
  t.equal(outcome?.reviewedBenign, true);
});

t.test('policy sees active break-glass grant', async (t) => {
  await oversight.store.saveGrant({ subject: 'demo-surgeon', route: 'ehr', reason_code: 'emergency', trace_id: '0'.repeat(32), expires_at: 60_000 }, 60_000);
  const { decision } = await evaluateAt('demo-surgeon', 0.9);

  t.equal(decision.rule, 'break-glass-allow');
  t.equal(contexts.at(-1)?.breakGlassActive, true);
  t.equal(contexts.at(-1)?.reviewedBenign, undefined, 'the policy is not given the benign label');
});
