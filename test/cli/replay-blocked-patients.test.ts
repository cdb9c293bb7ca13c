import t from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { PolicyPort } from '../../proxy/ports.ts';
import { replayRecords } from '../../proxy/replay/replay.ts';
import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { createScorer } from '../../scorer/scorer.ts';
import { ehrRouter, MODEL_PATH, record } from './replay-helpers.ts';

t.test('replay withholds blocked patients', async (t) => {
  const contexts: DecisionContext[] = [];
  // Blocks the first record and a mixed one, and allows the rest.
  const policy: PolicyPort = {
    hash: 'stand-in',
    decide(context: DecisionContext): Decision {
      contexts.push(context);
      const block = contexts.length === 1 || context.request.path === '/fhir/Observation';
      return { action: block ? 'block' : 'allow', rule: block ? 'test-block' : 'allow-rest', reasons: [], risk: context.risk };
    },
  };
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 7) });
  t.teardown(() => scorer.close());
  const router = ehrRouter();
  const records = [
    record(1, '/fhir/Patient/p-0011'),
    record(2, '/fhir/Patient/p-0011'),
    record(3, '/fhir/Patient/p-0011'),
    record(4, '/fhir/Observation?patient=p-0011,p-0012'),
    record(5, '/fhir/Patient/p-0012'),
  ];

  const outcome = await replayRecords(records, { scorer, policy, router, log: { warn: () => {} } }, () => {});

  t.same(outcome.decisions.map((decision) => decision.action), ['block', 'allow', 'allow', 'block', 'allow']);
  t.same(
    contexts.map((context) => context.features.patient_new_for_user),
    [1, 1, 1, 1, 1],
    'a blocked record withholds its patients for the rest of the day, also after allowed records',
  );
});

t.test('replay counts a stepped-up record as completed', async (t) => {
  const contexts: DecisionContext[] = [];
  // Steps up the first record and allows the rest.
  const policy: PolicyPort = {
    hash: 'stand-in',
    decide(context: DecisionContext): Decision {
      contexts.push(context);
      if (contexts.length > 1) return { action: 'allow', rule: 'allow-rest', reasons: [], risk: context.risk };
      return { action: 'step_up', rule: 'test-step-up', reasons: [], risk: context.risk, stepUp: { acr_values: 'urn:wardgate:acr:mfa', max_age: 0, ttl: 900 } };
    },
  };
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 7) });
  t.teardown(() => scorer.close());
  const router = ehrRouter();
  const records = [record(1, '/fhir/Patient/p-0021'), record(2, '/fhir/Patient/p-0021'), record(3, '/fhir/Patient/p-0022'), record(4, '/fhir/Patient/p-0022')];

  const outcome = await replayRecords(records, { scorer, policy, router, log: { warn: () => {} } }, () => {});

  t.same(outcome.decisions.map((decision) => decision.action), ['step_up', 'allow', 'allow', 'allow']);
  t.same(
    contexts.map((context) => context.features.patient_new_for_user),
    [1, 0, 1, 0],
    'the log shows the user went on to the record, so its patient counts as shown',
  );
});
