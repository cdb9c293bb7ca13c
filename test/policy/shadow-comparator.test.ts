import t from 'tap';

import { compilePolicy, type Decision } from '../../policy/index.ts';
import { ShadowComparator } from '../../policy/shadow/shadow-comparator.ts';
import { makeContext } from './helpers.ts';

const active = compilePolicy('version: 1\nrules:\n  - id: allow-clinicians\n    match: { groups: [clinicians] }\n    action: allow\n', 'active.yaml');
const candidate = compilePolicy(`version: 1
rules:
  - id: step-up-risky
    when: "risk >= 0.5"
    action: step_up
    step_up: { acr: mfa }
  - id: allow-clinicians
    match: { groups: [clinicians] }
    action: allow
`, 'candidate.yaml');

t.test('differences counted per rule pair', async (t) => {
  const comparator = new ShadowComparator();
  const contexts = [makeContext({ risk: 0.1 }), makeContext({ risk: 0.7 }), makeContext({ risk: 0.8 }), makeContext({ principal: null, risk: 0.9 })];

  const differences = contexts.map((context) => comparator.compare(context, active.decide(context), candidate).difference);

  t.equal(differences[0], undefined);
  t.same(differences[1], { activeAction: 'allow', activeRule: 'allow-clinicians', candidateAction: 'step_up', candidateRule: 'step-up-risky' });
  const counters = comparator.counters();
  t.equal(counters.compared, 4);
  t.equal(counters.differing, 3);
  t.equal(counters.differingAction, 3);
  t.same(counters.pairs.map((pair) => [pair.activeRule, pair.candidateRule, pair.count]), [
    ['allow-clinicians', 'step-up-risky', 2],
    ['default', 'step-up-risky', 1],
  ]);
});

t.test('same action under another rule counts', async (t) => {
  const comparator = new ShadowComparator();
  const decision = (rule: string): Decision => ({ action: 'allow', rule, reasons: [], risk: 0 });

  t.ok(comparator.record(decision('a'), decision('b')));
  t.equal(comparator.counters().differingAction, 0);
  t.equal(comparator.counters().differing, 1);
});

t.test('throwing candidate counted, never decides', async (t) => {
  const comparator = new ShadowComparator();
  const context = makeContext();
  const outcome = comparator.compare(context, active.decide(context), { hash: 'x', decide: () => { throw new Error('boom'); } });

  t.equal(outcome.error, 'boom');
  t.equal(outcome.candidate, undefined);
  t.equal(comparator.counters().candidateErrors, 1);
  t.equal(comparator.counters().differing, 0);
});

t.test('pair table bounded and reset', async (t) => {
  const comparator = new ShadowComparator({ maxPairs: 2 });
  const decision = (rule: string): Decision => ({ action: 'block', rule, reasons: [], risk: 0 });
  for (const rule of ['a', 'b', 'c', 'a']) comparator.record(decision('x'), decision(rule));

  const counters = comparator.counters();
  t.equal(counters.pairs.length, 2);
  t.equal(counters.pairsTruncated, true);
  t.equal(counters.differing, 4);

  comparator.reset();
  t.same(comparator.counters(), { compared: 0, differing: 0, differingAction: 0, candidateErrors: 0, pairs: [], pairsTruncated: false });
  t.throws(() => new ShadowComparator({ maxPairs: 0 }), RangeError);
});
