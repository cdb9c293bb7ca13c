import { fileURLToPath } from 'node:url';
import t from 'tap';

import { loadPolicyFile } from '../../policy/index.ts';
import { evaluationAction } from '../../scorer/evaluation/eval.ts';
import { makeContext } from '../policy/helpers.ts';

// `npm run eval` maps risks to actions in code; `wardgate replay` runs the policy file. Both
// must give the same action, or the eval's figures would not be the replay's.
const policyPath = fileURLToPath(new URL('../../policy/examples/risk-only.yaml', import.meta.url));

t.test('evaluationAction agrees with risk-only.yaml', async (t) => {
  const policy = await loadPolicyFile(policyPath);
  const risks = [0, 0.3, 0.59, 0.6, 0.75, 0.89, 0.9, 0.95, 1];
  const patients = [
    { patient_access: 0, unexplained_access: 0, patient_flagged: 0 },
    { patient_access: 1, unexplained_access: 0, patient_flagged: 0 },
    { patient_access: 1, unexplained_access: 1, patient_flagged: 0 },
    { patient_access: 1, unexplained_access: 0, patient_flagged: 1 },
    { patient_access: 1, unexplained_access: 0.5, patient_flagged: 0 },
    { patient_access: 0.5, unexplained_access: 0, patient_flagged: 0 },
  ];
  const actions = new Set<string>();
  for (const risk of risks) {
    for (const features of patients) {
      const expected = policy.decide(makeContext({ risk, features, principal: { groups: ['staff'] } })).action;
      t.equal(evaluationAction(risk, features), expected, `risk ${risk}, features ${JSON.stringify(features)}`);
      actions.add(expected);
    }
  }
  // The grid reaches every action the evaluation uses.
  t.same([...actions].sort(), ['allow', 'block', 'step_up']);
});

t.test('a very high risk on an explained, unflagged patient is a step-up, not a block', async (t) => {
  const explained = { patient_access: 1, unexplained_access: 0, patient_flagged: 0 };
  t.equal(evaluationAction(0.97, explained), 'step_up');
  t.equal(evaluationAction(0.97, { ...explained, patient_flagged: 1 }), 'block');
  t.equal(evaluationAction(0.97, { ...explained, unexplained_access: 1 }), 'block');
  t.equal(evaluationAction(0.97, { ...explained, patient_access: 0 }), 'block');
});
