import t from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import { compilePolicy } from '../../policy/index.ts';
import type { PolicyPort } from '../../proxy/ports.ts';
import { replayRecords, type ReplayedDecision } from '../../proxy/replay/replay.ts';
import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { createScorer } from '../../scorer/scorer.ts';
import { ehrRouter, MODEL_PATH, record } from './replay-helpers.ts';

const POLICY = `version: 1
rules:
  - id: demographic-search
    when: 'request.path == "/fhir/Patient" && request.query_params.exists(p, p in ["name", "family", "given", "birthdate", "phone", "telecom", "address", "identifier"])'
    action: notify
  - id: rest
    action: allow
`;

t.test('replay decides name searches by query params', async (t) => {
  const compiled = compilePolicy(POLICY, 'search.yaml');
  const contexts: DecisionContext[] = [];
  const policy: PolicyPort = {
    hash: compiled.hash,
    decide(context: DecisionContext): Decision {
      contexts.push(context);
      return compiled.decide(context);
    },
  };
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 7) });
  t.teardown(() => scorer.close());
  const router = ehrRouter();
  const records = [
    record(1, '/fhir/Patient?family=Zebulon&given=Quintessa'),
    record(2, '/fhir/Patient?name%3Acontains=Zeb&_count=10'),
    record(3, '/fhir/Patient?_id=p-0011'),
    record(4, '/fhir/Patient/p-0011'),
    record(5, '/fhir/Observation?patient=p-0011&family=Zebulon'),
  ];

  const replayed: ReplayedDecision[] = [];

  const outcome = await replayRecords(records, { scorer, policy, router, log: { warn: () => {} } }, (decision) => replayed.push(decision));

  t.same(outcome.skipped, []);
  t.same(replayed.map((decision) => `${decision.action} ${decision.rule}`), ['notify demographic-search', 'notify demographic-search', 'allow rest', 'allow rest', 'allow rest']);
  t.same(contexts.map((context) => context.request.queryParams), [['family', 'given'], ['name', '_count'], ['_id'], [], ['patient', 'family']]);
  const serialized = JSON.stringify(contexts);
  t.notOk(serialized.includes('Zebulon'), 'a family name value never enters the context');
  t.notOk(serialized.includes('Quintessa'), 'a given name value never enters the context');
  t.notOk(serialized.includes('Zeb'), 'a partial name value never enters the context');
});
