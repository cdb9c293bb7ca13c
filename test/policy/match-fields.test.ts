import t from 'tap';

import { compilePolicy, PolicyValidationError, type PolicyIssue } from '../../policy/index.ts';
import { makeContext } from './helpers.ts';

function rule(match: string, extra = ''): string {
  return `version: 1\n${extra}rules:\n  - id: hit\n    match: ${match}\n    action: allow\n`;
}

function decideRule(source: string, overrides: Parameters<typeof makeContext>[0] = {}): string {
  return compilePolicy(source, 'match.yaml').decide(makeContext(overrides)).rule;
}

function issuesOf(source: string): readonly PolicyIssue[] {
  try {
    compilePolicy(source, 'match.yaml');
  } catch (error) {
    if (error instanceof PolicyValidationError) return error.issues;
    throw error;
  }
  throw new Error('expected the policy to be rejected');
}

t.test('auth_methods match how the caller signed in', async (t) => {
  const source = rule('{ auth_methods: [bearer, mtls] }');

  t.equal(decideRule(source, { principal: { method: 'bearer' } }), 'hit');
  t.equal(decideRule(source, { principal: { method: 'mtls' } }), 'hit');
  t.equal(decideRule(source, { principal: { method: 'session' } }), 'default');
  t.equal(decideRule(source, { principal: null }), 'default');
});

t.test('devices match by pattern', async (t) => {
  const source = rule('{ devices: ["infusion-pump-*", "ward3.monitor"] }');

  t.equal(decideRule(source, { principal: { device: 'infusion-pump-0042' } }), 'hit');
  t.equal(decideRule(source, { principal: { device: 'ward3.monitor' } }), 'hit');
  t.equal(decideRule(source, { principal: { device: 'ward3xmonitor' } }), 'default', 'a dot is literal');
  t.equal(decideRule(source, {}), 'default', 'no device');
});

t.test('networks match IPv4 and IPv6 CIDR blocks', async (t) => {
  const source = rule('{ networks: ["10.20.0.0/16", "2001:db8:a::/48", "192.0.2.7"] }');

  t.equal(decideRule(source, { request: { ip: '10.20.3.4' } }), 'hit');
  t.equal(decideRule(source, { request: { ip: '::ffff:10.20.3.4' } }), 'hit', 'IPv4-mapped IPv6');
  t.equal(decideRule(source, { request: { ip: '10.21.0.1' } }), 'default');
  t.equal(decideRule(source, { request: { ip: '2001:db8:a:ffff::1' } }), 'hit');
  t.equal(decideRule(source, { request: { ip: '2001:db8:b::1' } }), 'default');
  t.equal(decideRule(source, { request: { ip: '192.0.2.7' } }), 'hit', 'bare address is one host');
  t.equal(decideRule(source, { request: { ip: '192.0.2.8' } }), 'default');
  t.equal(decideRule(source, { request: { ip: 'not-an-ip' } }), 'default');
});

t.test('bad CIDR blocks rejected with position', async (t) => {
  const issues = issuesOf(rule('{ networks: ["10.0.0.1/8", "10.0.0.0/33", "fe80::/200", "banana"] }'));

  t.equal(issues.length, 4);
  t.match(issues[0]!.expected, /no address bits set beyond the prefix length/);
  t.equal(issues[0]!.got, '"10.0.0.1/8"');
  t.match(issues[1]!.expected, /prefix length from 0 to 32/);
  t.match(issues[2]!.expected, /prefix length from 0 to 128/);
  t.match(issues[3]!.expected, /an IPv4 or IPv6 address/);
  t.equal(issues[0]!.line, 4);
});

t.test('tls_groups match the negotiated group', async (t) => {
  const source = rule('{ tls_groups: [X25519MLKEM768] }');

  t.equal(decideRule(source, {}), 'hit');
  t.equal(decideRule(source, { tls: { group: 'X25519' } }), 'default');
});

t.test('time window in a time zone', async (t) => {
  const source = rule('{ time: { days: [mon, tue, wed, thu, fri], hours: "07:00-19:00" } }', 'time_zone: Europe/Berlin\n');

  // 2025-01-06 is a Monday; Berlin is UTC+1 in January.
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 6, 6, 0) }), 'hit', 'Mon 07:00 local');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 6, 5, 59) }), 'default', 'Mon 06:59 local');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 6, 17, 59) }), 'hit', 'Mon 18:59 local');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 6, 18, 0) }), 'default', 'Mon 19:00 local');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 5, 10, 0) }), 'default', 'Sunday');
});

t.test('time window crossing midnight belongs to its start day', async (t) => {
  const source = rule('{ time: { days: [fri], hours: "22:00-06:00" } }', 'time_zone: "+00:00"\n');

  // 2025-01-10 is a Friday.
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 10, 23, 0) }), 'hit', 'Fri 23:00');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 11, 5, 59) }), 'hit', 'Sat 05:59');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 11, 6, 0) }), 'default', 'Sat 06:00');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 10, 5, 0) }), 'default', 'Fri 05:00 belongs to Thursday');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 10, 21, 59) }), 'default', 'Fri 21:59');
});

t.test('UTC offset time zone shifts the window', async (t) => {
  const source = rule('{ time: { hours: "09:00-10:00" } }', 'time_zone: "+05:30"\n');

  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 6, 3, 30) }), 'hit', '09:00 at +05:30');
  t.equal(decideRule(source, { time: Date.UTC(2025, 0, 6, 9, 30) }), 'default', '15:00 at +05:30');
});

t.test('bad time windows rejected', async (t) => {
  const issues = issuesOf(rule('{ time: { days: [mon, frid], hours: ["25:00-06:00", "08:00-08:00"] } }', 'time_zone: Mars/Base\n'));

  t.equal(issues.length, 4);
  t.match(issues[0]!.expected, /IANA time zone name/);
  t.match(issues[2]!.expected, /hours as "HH:MM-HH:MM"/);
  t.match(issues[3]!.expected, /start and end differ/);
  t.match(issues[1]!.expected, /a weekday of sun, mon/);
  t.match(issues[1]!.expected, /did you mean "fri"/);
  t.equal(issues[1]!.got, `"frid"`);
  t.equal(issuesOf(rule('{ time: { hours: ["25:00-06:00", "08:00-08:00"] } }')).length, 2);
});

t.test('notify and break_glass actions', async (t) => {
  const source = `version: 1
rules:
  - id: note
    match: { groups: [records] }
    action: notify
  - id: glass
    match: { paths: ["/fhir/Patient/*"] }
    action: break_glass
    break_glass: { ttl: 1800, reason_codes: [emergency, code-blue] }
`;
  const policy = compilePolicy(source, 'actions.yaml');

  const notify = policy.decide(makeContext({ principal: { groups: ['records'] } }));
  t.equal(notify.action, 'notify');
  const glass = policy.decide(makeContext({}));
  t.equal(glass.action, 'break_glass');
  t.same(glass.breakGlass, { ttl: 1800, reason_codes: ['emergency', 'code-blue'] });
});

t.test('break_glass block required and checked', async (t) => {
  const missing = issuesOf('version: 1\nrules:\n  - id: g\n    action: break_glass\n');
  t.equal(missing[0]!.code, 'WG_POLICY_MISSING_KEY');
  t.match(missing[0]!.expected, /a break_glass block/);

  const stray = issuesOf('version: 1\nrules:\n  - id: g\n    action: allow\n    break_glass: { reason_codes: [x] }\n');
  t.equal(stray[0]!.code, 'WG_POLICY_INVALID_VALUE');

  const bad = issuesOf('version: 1\nrules:\n  - id: g\n    action: break_glass\n    break_glass: { ttl: 5, reason_codes: [a, a, "b c"] }\n');
  t.equal(bad.length, 3);
});

t.test('route index keeps first match across routes', async (t) => {
  const source = `version: 1
rules:
  - id: pacs-only
    match: { routes: [pacs] }
    action: block
  - id: everyone
    match: { groups: [physicians] }
    action: notify
  - id: ehr-only
    match: { routes: [ehr] }
    action: allow
`;
  const policy = compilePolicy(source, 'index.yaml');

  t.equal(policy.decide(makeContext({ route: { id: 'pacs' } })).rule, 'pacs-only');
  t.equal(policy.decide(makeContext({ route: { id: 'ehr' } })).rule, 'everyone');
  t.equal(policy.decide(makeContext({ route: { id: 'ehr' }, principal: { groups: [] } })).rule, 'ehr-only');
  t.equal(policy.decide(makeContext({ route: { id: 'lab' }, principal: { groups: [] } })).rule, 'default');
});

t.test('CEL sees session, device and break_glass_active', async (t) => {
  const source = `version: 1
rules:
  - id: old-session
    when: "session.active && session.age_s > 3600"
    action: step_up
    step_up: { acr: mfa }
  - id: glass
    when: "break_glass_active && device.present && device.id.startsWith('ws-')"
    action: allow
  - id: minute
    when: "time.minute == 30"
    action: notify
`;
  const policy = compilePolicy(source, 'cel.yaml');
  const decide = (extra: object, principal: object = {}) => policy.decide({ ...makeContext({ principal }), ...extra }).rule;

  t.equal(decide({ session: { age_s: 4000 } }), 'old-session');
  t.equal(decide({ session: { age_s: 100 } }), 'default');
  t.equal(decide({ breakGlassActive: true }, { device: 'ws-12' }), 'glass');
  t.equal(decide({ breakGlassActive: true }), 'default');
  t.equal(decide({ time: Date.UTC(2025, 0, 6, 10, 30) }), 'minute');
});
