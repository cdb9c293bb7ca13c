import t from 'tap';

import { compilePolicy, PolicyValidationError, type PolicyIssue } from '../../policy/index.ts';
import { makeContext } from './helpers.ts';

function issuesOf(source: string | Uint8Array, options = {}): readonly PolicyIssue[] {
  try {
    compilePolicy(source, 'hostile.yaml', options);
  } catch (error) {
    if (error instanceof PolicyValidationError) return error.issues;
    throw error;
  }
  throw new Error('expected the policy to be rejected');
}

const baseContext = makeContext();

const VALID = 'version: 1\nrules:\n  - id: r\n    action: allow\n';

t.test('truncated YAML', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: r\n    match: { groups: [a, b\n');

  t.ok(issues.length >= 1);
  t.equal(issues[0]!.code, 'WG_POLICY_YAML_SYNTAX');
  t.equal(issues[0]!.file, 'hostile.yaml');
});

t.test('every truncation of a valid file fails cleanly or compiles', async (t) => {
  const full = `version: 1
conditions:
  night: "time.hour < 6"
rules:
  - id: r
    match: { routes: [ehr], paths: ["/fhir/**"] }
    when: "conditions.night && risk >= 0.5"
    action: step_up
    step_up: { acr: "urn:wardgate:acr:mfa", max_age: 0, ttl: 900 }
`;
  let rejected = 0;
  for (let length = 0; length < full.length; length++) {
    try {
      compilePolicy(full.slice(0, length), 'cut.yaml');
    } catch (error) {
      if (!(error instanceof PolicyValidationError)) throw error;
      rejected++;
    }
  }

  t.ok(rejected > full.length / 2, `${rejected} of ${full.length} truncations rejected with coded issues`);
});

t.test('alias bomb rejected', async (t) => {
  const lines = ['version: 1', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
  lines.push('rules:', '  - id: r', '    action: allow', '    match:', '      groups: *a9');

  const issues = issuesOf(`${lines.join('\n')}\n`);

  t.ok(issues.some((issue) => issue.code === 'WG_POLICY_UNKNOWN_KEY' && issue.got === '"a0"'));
  t.ok(issues.some((issue) => issue.code === 'WG_POLICY_WRONG_TYPE' && issue.line === 11 && issue.column === 10), 'the aliased nested list is not a list of strings');
});

t.test('alias count limit', async (t) => {
  const groups = Array.from({ length: 150 }, () => '*g').join(', ');
  const issues = issuesOf(`version: 1\nrules:\n  - id: r\n    action: allow\n    match:\n      routes: [&g ehr]\n      groups: [${groups}]\n`);

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_ALIAS_LIMIT');
  t.equal(issues[0]!.line, 7);
});

t.test('alias limit counts each reference once', async (t) => {
  // Each shape: the rule that defines the anchor, then one rule per alias reference.
  const shapes: Record<string, { anchor: string; alias: (index: number) => string }> = {
    'aliased list': { anchor: '{ id: a, action: allow, match: { groups: &g [x] } }', alias: (i) => `{ id: r${i}, action: allow, match: { groups: *g } }` },
    'aliased list entry': { anchor: '{ id: a, action: allow, match: { groups: [&g x] } }', alias: (i) => `{ id: r${i}, action: allow, match: { groups: [*g] } }` },
    'aliased hours': { anchor: '{ id: a, action: allow, match: { time: { hours: &h "07:00-19:00" } } }', alias: (i) => `{ id: r${i}, action: allow, match: { time: { hours: *h } } }` },
    'aliased days': { anchor: '{ id: a, action: allow, match: { time: { days: &d [mon], hours: "07:00-19:00" } } }', alias: (i) => `{ id: r${i}, action: allow, match: { time: { days: *d, hours: "07:00-19:00" } } }` },
    'aliased reason codes': {
      anchor: '{ id: a, action: break_glass, break_glass: { reason_codes: &c [emergency] } }',
      alias: (i) => `{ id: r${i}, action: break_glass, break_glass: { reason_codes: *c } }`,
    },
    'aliased rule': { anchor: '&r { id: a, action: allow }', alias: () => '*r' },
  };
  const policy = (shape: { anchor: string; alias: (index: number) => string }, count: number) =>
    `version: 1\nrules:\n  - ${shape.anchor}\n${Array.from({ length: count }, (_, i) => `  - ${shape.alias(i)}`).join('\n')}\n`;
  const limitIssues = (source: string) => {
    try {
      compilePolicy(source, 'hostile.yaml');
      return [];
    } catch (error) {
      if (!(error instanceof PolicyValidationError)) throw error;
      return error.issues.filter((issue) => issue.code === 'WG_POLICY_ALIAS_LIMIT');
    }
  };

  for (const [name, shape] of Object.entries(shapes)) {
    t.same(limitIssues(policy(shape, 100)), [], `${name}: 100 references accepted`);
    const over = limitIssues(policy(shape, 101));
    t.equal(over.length, 1, `${name}: 101 references rejected`);
    t.equal(over[0]?.line, 104, `${name}: the issue points at the 101st reference`);
    t.equal(over[0]?.expected, 'at most 100 alias references', name);
  }
  t.doesNotThrow(() => compilePolicy(policy(shapes['aliased list']!, 100), 'hostile.yaml'), 'a policy with 100 aliased lists compiles');
});

t.test('undefined alias rejected', async (t) => {
  const issues = issuesOf('version: 1\nrules: *nothing\n');

  t.ok(issues.length >= 1);
  t.ok(issues.every((issue) => issue.code === 'WG_POLICY_YAML_SYNTAX'), issues.map((issue) => issue.got).join('; '));
});

t.test('deep flow nesting rejected', async (t) => {
  const depth = 100_000;
  const issues = issuesOf(`version: 1\nrules: ${'['.repeat(depth)}${']'.repeat(depth)}\n`);

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_YAML_SYNTAX');
  t.equal(issues[0]!.expected, 'flow collections nested at most 64 levels deep');
  t.same([issues[0]!.line, issues[0]!.column], [2, 72]);
});

t.test('deep block nesting rejected', async (t) => {
  let text = 'version: 1\nrules:\n';
  let indent = '  ';
  for (let i = 0; i < 300; i++) {
    text += `${indent}- \n`;
    indent += '  ';
  }
  const issues = issuesOf(text);

  t.ok(issues.length >= 1);
  t.equal(issues[0]!.code, 'WG_POLICY_WRONG_TYPE');
});

t.test('oversized file rejected before parsing', async (t) => {
  const huge = `${VALID}# ${'x'.repeat(1024 * 1024)}\n`;

  const issues = issuesOf(huge);

  t.same(issues, [{
    code: 'WG_POLICY_FILE_TOO_LARGE',
    file: 'hostile.yaml',
    line: 1,
    column: 1,
    expected: 'a file of at most 1048576 bytes',
    got: `${Buffer.byteLength(huge)} bytes`,
  }]);
  t.equal(issuesOf(VALID, { maxBytes: 10 })[0]!.code, 'WG_POLICY_FILE_TOO_LARGE', 'limit is configurable');
});

t.test('non-UTF-8 bytes rejected with position', async (t) => {
  const bytes = Buffer.concat([Buffer.from('version: 1\nrules:\n  - id: caf'), Buffer.from([0xe9]), Buffer.from('\n    action: allow\n')]);

  const issues = issuesOf(bytes);

  t.same(issues, [{
    code: 'WG_POLICY_INVALID_ENCODING',
    file: 'hostile.yaml',
    line: 3,
    column: 12,
    expected: 'UTF-8 text',
    got: 'byte 0xe9 at byte offset 29',
  }]);
});

t.test('overlong and surrogate UTF-8 rejected', async (t) => {
  for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]) {
    const issues = issuesOf(Buffer.concat([Buffer.from('version: 1 # '), Buffer.from(bad), Buffer.from('\nrules: []\n')]));
    t.equal(issues[0]?.code, 'WG_POLICY_INVALID_ENCODING', bad.map((byte) => byte.toString(16)).join(' '));
  }
});

t.test('valid UTF-8 text accepted', async (t) => {
  const policy = compilePolicy('version: 1\nrules:\n  - id: r\n    description: Zugriff für Ärztinnen — 医生\n    action: allow\n', 'u.yaml');

  t.same(policy.ruleIds, ['r']);
});

t.test('duplicate keys rejected', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: r\n    action: allow\n    action: block\n');

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_DUPLICATE_KEY');
  t.same([issues[0]!.line, issues[0]!.column], [5, 5]);
});

t.test('multiple documents rejected', async (t) => {
  const issues = issuesOf(`${VALID}---\n${VALID}`);

  t.equal(issues[0]!.code, 'WG_POLICY_YAML_SYNTAX');
  t.match(issues[0]!.got, /MULTIPLE_DOCS/);
});

t.test('unknown tags rejected', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: !shell r\n    action: allow\n');

  t.equal(issues[0]!.code, 'WG_POLICY_YAML_SYNTAX');
  t.equal(issues[0]!.line, 3);
});

t.test('top level of wrong type', async (t) => {
  for (const source of ['[1, 2]\n', '42\n', '"text"\n']) {
    const issues = issuesOf(source);
    t.equal(issues.length, 1, source);
    t.equal(issues[0]!.code, 'WG_POLICY_WRONG_TYPE', source);
  }
});

t.test('hostile CEL rejected at load', async (t) => {
  const cases: [string, string][] = [
    ['risk >= ', 'WG_POLICY_CEL_SYNTAX'],
    ['((((((((((risk', 'WG_POLICY_CEL_SYNTAX'],
    ['"unterminated', 'WG_POLICY_CEL_SYNTAX'],
    ['risk >= 0.9 )', 'WG_POLICY_CEL_SYNTAX'],
    ['risk >= 0.9 ; drop table', 'WG_POLICY_CEL_SYNTAX'],
    ['1', 'WG_POLICY_CEL_TYPE'],
    ['undeclared_thing', 'WG_POLICY_CEL_TYPE'],
    ['request.path.matches("a{99999}")', 'WG_POLICY_CEL_TYPE'],
  ];

  for (const [when, code] of cases) {
    const issues = issuesOf(`version: 1\nrules:\n  - id: r\n    when: ${JSON.stringify(when)}\n    action: block\n`);
    t.equal(issues[0]?.code, code, when.slice(0, 40));
  }
});

t.test('deeply nested CEL does not crash', async (t) => {
  for (const when of [`${'('.repeat(5000)}risk${')'.repeat(5000)} > 0.5`, `${'!'.repeat(20000)}true`]) {
    let outcome: string;
    try {
      compilePolicy(`version: 1\nrules:\n  - id: r\n    when: "${when}"\n    action: block\n`, 'deep.yaml');
      outcome = 'compiled';
    } catch (error) {
      outcome = error instanceof PolicyValidationError ? error.issues[0]!.code : `uncoded ${String(error)}`;
    }

    t.ok(outcome === 'compiled' || outcome === 'WG_POLICY_CEL_SYNTAX' || outcome === 'WG_POLICY_CEL_TOO_COMPLEX', outcome.slice(0, 200));
  }
});

t.test('very long id rejected', async (t) => {
  const issues = issuesOf(`version: 1\nrules:\n  - id: ${'a'.repeat(500)}\n    action: allow\n`);

  t.equal(issues[0]!.code, 'WG_POLICY_INVALID_VALUE');
});

t.test('hostile match values rejected', async (t) => {
  const match = (value: string) => issuesOf(`version: 1\nrules:\n  - id: r\n    match: ${value}\n    action: allow\n`);

  for (const cidr of ['10.0.0.0/-1', '10.0.0.0/08x', '::/129', '1.2.3.4.5/8', '10.0.0.0/', '/8', '%', ''.padEnd(5000, 'f')]) {
    const issues = match(`{ networks: ${JSON.stringify([cidr])} }`);
    t.equal(issues[0]?.code, 'WG_POLICY_INVALID_VALUE', `networks ${cidr.slice(0, 20)}`);
  }
  for (const hours of ['24:00-01:00', '07:60-08:00', '7:00-8:00', '07:00', '07:00-08:00-09:00', '']) {
    const issues = match(`{ time: { hours: ${JSON.stringify(hours)} } }`);
    t.ok(issues.length >= 1, `hours ${JSON.stringify(hours)}`);
  }
  t.equal(match('{ time: { days: [], hours: "07:00-08:00" } }')[0]?.code, 'WG_POLICY_INVALID_VALUE', 'empty day list');
  t.equal(match('{ time: "always" }')[0]?.code, 'WG_POLICY_WRONG_TYPE', 'time as a string');
  t.equal(match('{ auth_methods: [kerberos] }')[0]?.code, 'WG_POLICY_INVALID_VALUE');
  t.equal(match('{ devices: [{ id: x }] }')[0]?.code, 'WG_POLICY_WRONG_TYPE');
});

t.test('huge match lists compile and decide', async (t) => {
  const networks = Array.from({ length: 20_000 }, (_, i) => `"10.${i >> 8}.${i & 255}.0/24"`).join(', ');
  const policy = compilePolicy(`version: 1\nrules:\n  - id: r\n    match: { networks: [${networks}] }\n    action: allow\n`, 'big.yaml');

  t.equal(policy.decide({ ...baseContext, request: { ...baseContext.request, ip: '10.78.31.9' } }).rule, 'r');
  t.equal(policy.decide({ ...baseContext, request: { ...baseContext.request, ip: '10.200.0.1' } }).rule, 'default');
});

t.test('hostile context values do not throw', async (t) => {
  const policy = compilePolicy(`version: 1\nrules:\n  - id: r\n    match: { time: { hours: "07:00-19:00" }, networks: ["10.0.0.0/8"] }\n    when: "session.age_s > 10"\n    action: allow\n`, 'ctx.yaml');

  for (const time of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    const decision = policy.decide({ ...baseContext, request: { ...baseContext.request, ip: '10.1.1.1' }, time, session: { age_s: 100 } });
    t.equal(decision.action, 'block', `time ${time}`);
  }
  const weird = policy.decide({ ...baseContext, request: { ...baseContext.request, ip: 'fe80::1%eth0' }, session: { age_s: Number.NaN } });
  t.equal(weird.rule, 'default');
});
