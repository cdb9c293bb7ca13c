import t from 'tap';

import { loadPolicyFile, type DecisionContext } from '../../policy/index.ts';
import { makeContext } from './helpers.ts';

const MFA = 'urn:wardgate:acr:mfa';
const EXPORT = { id: 'ehr', host: '*', pathPrefix: '/', sensitivity: 'normal' as const };
const EXPORT_PATH = '/fhir/Patient/17/$everything';

const physician = { groups: ['physicians', 'clinicians'] };
const nurse = { groups: ['nurses', 'clinicians'] };
const clerk = { groups: ['records'] };

const cases: [string, DecisionContext, string, string][] = [
  ['physician reads a patient', makeContext({ principal: physician }), 'allow', 'clinicians-allow'],
  ['nurse reads observations', makeContext({ principal: nurse, request: { path: '/fhir/Observation/5' } }), 'allow', 'clinicians-allow'],
  ['clerk reads a patient', makeContext({ principal: clerk }), 'allow', 'records-allow'],
  ['clerk reads observations', makeContext({ principal: clerk, request: { path: '/fhir/Observation/5' } }), 'block', 'records-no-observations'],
  ['clerk reads observations at unusual risk', makeContext({ principal: clerk, risk: 0.7, request: { path: '/fhir/Observation/5' } }), 'block', 'records-no-observations'],
  ['clerk at night steps up', makeContext({ principal: clerk, time: Date.UTC(2025, 0, 6, 23) }), 'step_up', 'off-hours-records-step-up'],
  ['clerk at night on a VIP outside care steps up first', makeContext({ principal: clerk, time: Date.UTC(2025, 0, 6, 23), features: { flagged_without_care: 1 } }), 'step_up', 'off-hours-records-step-up'],
  ['clerk by day on a VIP outside care gets the notice', makeContext({ principal: clerk, features: { flagged_without_care: 1 } }), 'notify', 'notify-flagged-without-care'],
  ['anonymous request', makeContext({ principal: null }), 'block', 'block-anonymous'],
  ['very high risk', makeContext({ principal: physician, risk: 0.93 }), 'block', 'block-very-high-risk'],
  ['unusual request', makeContext({ principal: nurse, risk: 0.65 }), 'step_up', 'step-up-unusual'],
  ['unusual request after step-up', makeContext({ principal: nurse, risk: 0.65, elevatedAcr: [MFA] }), 'allow', 'clinicians-allow'],
  ['physician export', makeContext({ principal: physician, route: EXPORT, request: { path: EXPORT_PATH } }), 'step_up', 'export-physicians-step-up'],
  ['physician export after step-up', makeContext({ principal: physician, route: EXPORT, request: { path: EXPORT_PATH }, elevatedAcr: [MFA] }), 'allow', 'export-physicians-allow'],
  ['nurse export', makeContext({ principal: nurse, route: EXPORT, request: { path: EXPORT_PATH }, elevatedAcr: [MFA] }), 'block', 'export-others-block'],
  ['unknown group', makeContext({ principal: { groups: ['visitors'] } }), 'block', 'default'],
];

t.test('demo policy decisions', async (t) => {
  const policy = await loadPolicyFile('policy/examples/demo.yaml', { routeIds: ['ehr'] });

  for (const [name, context, action, rule] of cases) {
    const decision = policy.decide(context);
    t.equal(decision.action, action, `${name}: action`);
    t.equal(decision.rule, rule, `${name}: rule`);
  }
});

t.test('demo step-up requirement', async (t) => {
  const policy = await loadPolicyFile('policy/examples/demo.yaml');

  const unusual = cases.find(([name]) => name === 'unusual request')!;
  t.same(policy.decide(unusual[1]).stepUp, { acr_values: MFA, max_age: 0, ttl: 900 });
  t.equal(policy.decide(unusual[1]).reasons[0], `rule step-up-unusual matched (when risk >= 0.6): Ask for a second factor when the request is unusual; step-up to acr ${MFA} with max_age 0, valid for 900 s`, 'the step-up clause replaces the full stop');
});
