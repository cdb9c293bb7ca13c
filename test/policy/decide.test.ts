import { createHash } from 'node:crypto';

import t from 'tap';

import { compilePolicy, type CompiledPolicy } from '../../policy/index.ts';
import { MONDAY_10_UTC, makeContext } from './helpers.ts';

const MFA = 'urn:wardgate:acr:mfa';

const ORDERED = `version: 1
rules:
  - id: block-high
    when: "risk >= 0.9"
    action: block
    reason: Very unusual.
  - id: step-up-medium
    when: "risk >= 0.6"
    action: step_up
    step_up: { acr: "${MFA}", max_age: 0, ttl: 900 }
  - id: allow-physicians
    match:
      groups: [physicians]
    action: allow
  - id: allow-everyone-late
    action: allow
`;

function compile(source: string, options = {}): CompiledPolicy {
  return compilePolicy(source, 'test.yaml', options);
}

t.test('first matching rule decides', async (t) => {
  const policy = compile(ORDERED);

  const decision = policy.decide(makeContext({ risk: 0.95 }));

  t.equal(decision.action, 'block');
  t.equal(decision.rule, 'block-high');
  t.equal(decision.risk, 0.95);
  t.same(decision.reasons, ['rule block-high matched (when risk >= 0.9): Very unusual.']);
  t.equal(decision.stepUp, undefined);
});

t.test('later rule decides when earlier ones fail', async (t) => {
  const policy = compile(ORDERED);

  t.equal(policy.decide(makeContext({ risk: 0.1 })).rule, 'allow-physicians');
  t.equal(policy.decide(makeContext({ risk: 0.1, principal: { groups: ['nurses'] } })).rule, 'allow-everyone-late');
});

t.test('no matching rule blocks by default', async (t) => {
  const policy = compile(`version: 1
rules:
  - id: only-nurses
    match: { groups: [nurses] }
    action: allow
`);

  const decision = policy.decide(makeContext());

  t.equal(decision.action, 'block');
  t.equal(decision.rule, 'default');
  t.same(decision.reasons, ['no rule matched; the default is block']);
});

t.test('empty rule list blocks everything', async (t) => {
  const policy = compile('version: 1\nrules: []\n');

  t.equal(policy.decide(makeContext()).rule, 'default');
  t.same(policy.ruleIds, []);
});

t.test('step_up action carries requirement', async (t) => {
  const policy = compile(ORDERED);

  const decision = policy.decide(makeContext({ risk: 0.7 }));

  t.equal(decision.action, 'step_up');
  t.equal(decision.rule, 'step-up-medium');
  t.same(decision.stepUp, { acr_values: MFA, max_age: 0, ttl: 900 });
  t.match(decision.reasons[0], /step-up to acr urn:wardgate:acr:mfa with max_age 0, valid for 900 s$/);
});

t.test('step_up defaults for max_age and ttl', async (t) => {
  const policy = compile(`version: 1
rules:
  - id: always-mfa
    action: step_up
    step_up: { acr: "${MFA}" }
`);

  t.same(policy.decide(makeContext()).stepUp, { acr_values: MFA, max_age: 0, ttl: 900 });
});

t.test('step_up skipped when already elevated', async (t) => {
  const policy = compile(ORDERED);

  const decision = policy.decide(makeContext({ risk: 0.7, elevatedAcr: [MFA] }));

  t.equal(decision.action, 'allow');
  t.equal(decision.rule, 'allow-physicians');
  t.same(decision.reasons, [
    `rule step-up-medium not applied: the session is already elevated to acr ${MFA}`,
    'rule allow-physicians matched: no reason given',
  ]);
});

t.test('step_up not skipped for another acr', async (t) => {
  const policy = compile(ORDERED);

  const decision = policy.decide(makeContext({ risk: 0.7, elevatedAcr: ['urn:wardgate:acr:other'] }));

  t.equal(decision.action, 'step_up');
});

t.test('elevation does not lift a block', async (t) => {
  const policy = compile(ORDERED);

  t.equal(policy.decide(makeContext({ risk: 0.95, elevatedAcr: [MFA] })).action, 'block');
});

t.test('match fields each narrow the rule', async (t) => {
  const policy = compile(`version: 1
rules:
  - id: r
    match:
      routes: [ehr-export]
      hosts: [ehr.localhost]
      paths: ["/fhir/Patient/*/$everything"]
      methods: [GET]
      groups: [physicians]
      sensitivity: [high]
      authenticated: true
    action: allow
`);
  const matching = makeContext({ route: { id: 'ehr-export', sensitivity: 'high' }, request: { path: '/fhir/Patient/42/$everything' } });

  t.equal(policy.decide(matching).rule, 'r');
  t.equal(policy.decide({ ...matching, route: { ...matching.route, id: 'ehr' } }).rule, 'default', 'route');
  t.equal(policy.decide({ ...matching, request: { ...matching.request, host: 'other.localhost' } }).rule, 'default', 'host');
  t.equal(policy.decide({ ...matching, request: { ...matching.request, host: 'EHR.LOCALHOST' } }).rule, 'r', 'host case and port');
  t.equal(policy.decide({ ...matching, request: { ...matching.request, path: '/fhir/Patient/42/extra/$everything' } }).rule, 'default', 'path glob stays in one segment');
  t.equal(policy.decide({ ...matching, request: { ...matching.request, method: 'POST' } }).rule, 'default', 'method');
  t.equal(policy.decide({ ...matching, principal: { ...matching.principal!, groups: ['nurses'] } }).rule, 'default', 'group');
  t.equal(policy.decide({ ...matching, route: { ...matching.route, sensitivity: 'normal' } }).rule, 'default', 'sensitivity');
  t.equal(policy.decide({ ...matching, principal: null }).rule, 'default', 'authenticated');
});

t.test('path glob with double star', async (t) => {
  const policy = compile(`version: 1
rules:
  - id: r
    match: { paths: ["/fhir/**/history", "/admin/**"] }
    action: allow
`);
  const at = (path: string) => policy.decide(makeContext({ request: { path } })).rule;

  t.equal(at('/fhir/history'), 'r');
  t.equal(at('/fhir/Patient/1/history'), 'r');
  t.equal(at('/fhir/Patient/1/history/2'), 'default');
  t.equal(at('/admin/users/1'), 'r');
  t.equal(at('/administrator'), 'default');
});

t.test('authenticated false matches anonymous requests', async (t) => {
  const policy = compile(`version: 1
rules:
  - id: anonymous
    match: { authenticated: false }
    action: block
  - id: rest
    action: allow
`);

  t.equal(policy.decide(makeContext({ principal: null })).rule, 'anonymous');
  t.equal(policy.decide(makeContext()).rule, 'rest');
});

t.test('CEL reads every variable group', async (t) => {
  const cases: [string, ReturnType<typeof makeContext>, ReturnType<typeof makeContext>][] = [
    ["principal.subject == 'alice' && 'pwd' in principal.amr && principal.acr == 'urn:wardgate:acr:pwd'", makeContext(), makeContext({ principal: { subject: 'bob' } })],
    ["principal.method == 'mtls' && principal.device == 'pump-7'", makeContext({ principal: { method: 'mtls', device: 'pump-7' } }), makeContext({ principal: { method: 'mtls' } })],
    ["principal.groups.exists(g, g.startsWith('phys'))", makeContext(), makeContext({ principal: { groups: ['nurses'] } })],
    ['!principal.authenticated', makeContext({ principal: null }), makeContext()],
    ["route.id == 'ehr' && route.host == 'ehr.localhost' && route.path_prefix == '/' && route.sensitivity == 'normal'", makeContext(), makeContext({ route: { sensitivity: 'high' } })],
    ["request.method == 'GET' && request.host.startsWith('ehr.') && request.path.matches('^/fhir/Patient/[0-9]+$') && request.ip == '127.0.0.1'", makeContext(), makeContext({ request: { path: '/fhir/Patient/x' } })],
    ['risk > 0.5', makeContext({ risk: 0.51 }), makeContext({ risk: 0.5 })],
    ["features['new_device'] > 0.0", makeContext({ features: { new_device: 1 } }), makeContext({ features: { new_device: 0 } })],
    ["tls.group == 'X25519MLKEM768' && tls.protocol == 'TLSv1.3'", makeContext(), makeContext({ tls: { group: 'X25519' } })],
    ['time.hour == 10 && time.weekday == 1', makeContext(), makeContext({ time: MONDAY_10_UTC + 3_600_000 })],
    [`time.epoch_ms == ${MONDAY_10_UTC}`, makeContext(), makeContext({ time: MONDAY_10_UTC + 1 })],
    ['size(principal.groups) == 2 && principal.groups[0] == "physicians"', makeContext(), makeContext({ principal: { groups: ['nurses'] } })],
    ['request.path.contains("Patient") ? risk < 0.5 : false', makeContext(), makeContext({ request: { path: '/fhir/Observation/1' } })],
  ];

  for (const [when, matching, other] of cases) {
    const policy = compile(`version: 1\nrules:\n  - id: r\n    when: ${JSON.stringify(when)}\n    action: allow\n`);
    t.equal(policy.decide(matching).rule, 'r', `${when} matches`);
    t.equal(policy.decide(other).rule, 'default', `${when} does not match`);
  }
});

t.test('time in a configured zone', async (t) => {
  const policy = compile(`version: 1
rules:
  - id: night
    when: "time.hour < 6 || time.hour >= 22"
    action: step_up
    step_up: { acr: "${MFA}" }
  - id: day
    action: allow
`, { timeZone: 'Europe/Berlin' });
  // 21:30 UTC in January is 22:30 in Berlin (UTC+1); 21:30 UTC in July is 23:30 (UTC+2).
  const winter = Date.UTC(2025, 0, 6, 21, 30);
  const summerMorning = Date.UTC(2025, 6, 7, 3, 59);
  const summerSix = Date.UTC(2025, 6, 7, 4, 0);

  t.equal(policy.timeZone, 'Europe/Berlin');
  t.equal(policy.decide(makeContext({ time: winter })).rule, 'night');
  t.equal(policy.decide(makeContext({ time: summerMorning })).rule, 'night');
  t.equal(policy.decide(makeContext({ time: summerSix })).rule, 'day');
  t.equal(compile('version: 1\nrules: [{id: r, action: allow, when: "time.hour == 21"}]\n').decide(makeContext({ time: winter })).rule, 'r', 'UTC by default');
});

t.test('weekday counts from Sunday in the zone', async (t) => {
  const policy = compile('version: 1\nrules: [{id: sunday, action: allow, when: "time.weekday == 0"}]\n', { timeZone: 'America/New_York' });

  // Monday 2025-01-06 03:00 UTC is still Sunday evening in New York.
  t.equal(policy.decide(makeContext({ time: Date.UTC(2025, 0, 6, 3) })).rule, 'sunday');
  t.equal(policy.decide(makeContext({ time: Date.UTC(2025, 0, 6, 6) })).rule, 'default');
});

t.test('named conditions are inlined', async (t) => {
  const policy = compile(`version: 1
conditions:
  off_hours: "time.hour < 6 || time.hour >= 22"
  risky_off_hours: "conditions.off_hours && risk > 0.3"
rules:
  - id: r
    when: "conditions.risky_off_hours || risk > 0.8"
    action: block
`);

  t.equal(policy.decide(makeContext({ risk: 0.4, time: Date.UTC(2025, 0, 6, 23) })).rule, 'r');
  t.equal(policy.decide(makeContext({ risk: 0.4 })).rule, 'default');
  t.equal(policy.decide(makeContext({ risk: 0.9 })).rule, 'r');
});

t.test('CEL runtime error counts as no match', async (t) => {
  const policy = compile(`version: 1
rules:
  - id: needs-feature
    when: "features['missing'] > 1.0"
    action: allow
  - id: fallback
    action: block
`);

  const decision = policy.decide(makeContext());

  t.equal(decision.rule, 'fallback');
  t.equal(decision.reasons.length, 2);
  t.match(decision.reasons[0], /^rule needs-feature not applied: its when condition failed to evaluate \(.*missing.*\)$/);
});

t.test('non-finite time does not throw', async (t) => {
  const policy = compile('version: 1\nrules: [{id: r, action: allow, when: "time.hour >= 0"}, {id: s, action: allow}]\n');

  const decision = policy.decide(makeContext({ time: Number.NaN }));

  t.equal(decision.rule, 's');
  t.equal(decision.reasons[0], 'rule r not applied: its when condition failed to evaluate (request time must be a finite number of milliseconds, got NaN)');
});

t.test('native and interpreted conditions agree', async (t) => {
  // The first form runs as a closure, the second (wrapped in a macro) through the interpreter.
  const expressions = [
    "risk >= 0.5 && 'physicians' in principal.groups && time.hour < 12",
    "request.method in ['GET', 'HEAD'] || !(risk < 0.2)",
    "route.sensitivity != 'high' && time.weekday == 1 && time.hour >= 10",
  ];
  const contexts = [
    makeContext({ risk: 0.5 }),
    makeContext({ risk: 0.49, request: { method: 'POST' } }),
    makeContext({ risk: Number.NaN, request: { method: 'DELETE' } }),
    makeContext({ principal: null, risk: 0.7, time: MONDAY_10_UTC + 5 * 3_600_000 }),
    makeContext({ route: { sensitivity: 'high' } }),
  ];

  for (const expression of expressions) {
    const native = compile(`version: 1\nrules: [{id: r, action: allow, when: ${JSON.stringify(expression)}}]\n`);
    const interpreted = compile(`version: 1\nrules: [{id: r, action: allow, when: ${JSON.stringify(`[1].all(x, ${expression})`)}}]\n`);
    for (const context of contexts) {
      t.equal(native.decide(context).rule, interpreted.decide(context).rule, `${expression} at risk ${context.risk}`);
    }
  }
});

t.test('hash and rule ids describe the file', async (t) => {
  const policy = compile(ORDERED);

  t.equal(policy.hash, createHash('sha256').update(ORDERED).digest('hex'));
  t.same(policy.ruleIds, ['block-high', 'step-up-medium', 'allow-physicians', 'allow-everyone-late']);
  t.equal(policy.file, 'test.yaml');
  t.equal(compilePolicy(Buffer.from(ORDERED), 'test.yaml').hash, policy.hash, 'bytes and string give one hash');
});

t.test('explain lists every rule tried', async (t) => {
  const policy = compile(ORDERED);

  const { decision, trace } = policy.explain(makeContext({ risk: 0.7, principal: { groups: ['nurses'] }, elevatedAcr: [MFA] }));

  t.equal(decision.rule, 'allow-everyone-late');
  t.same(trace, [
    { rule: 'block-high', outcome: 'condition-false', detail: 'risk >= 0.9' },
    { rule: 'step-up-medium', outcome: 'already-elevated' },
    { rule: 'allow-physicians', outcome: 'no-match', field: 'groups', detail: 'groups [nurses] share none with match.groups [physicians]' },
    { rule: 'allow-everyone-late', outcome: 'matched' },
  ]);
});

t.test('unknown time zone fails with option named', async (t) => {
  t.throws(() => compile(ORDERED, { timeZone: 'Mars/Olympus' }), {
    code: 'WG_POLICY_INVALID_OPTION',
    message: /^policy option timeZone: expected an IANA time zone name .*got "Mars\/Olympus"/,
  });
  t.throws(() => compile(ORDERED, { maxBytes: 0 }), { code: 'WG_POLICY_INVALID_OPTION', message: /^policy option maxBytes/ });
});
