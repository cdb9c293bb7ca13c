import t from 'tap';

import { compilePolicy, formatIssue, PolicyValidationError, type PolicyIssue } from '../../policy/index.ts';

/** Compiles `source` and returns the issues it is rejected with; fails the test when it compiles. */
function issuesOf(source: string | Uint8Array, options = {}): readonly PolicyIssue[] {
  try {
    compilePolicy(source, 'p.yaml', options);
  } catch (error) {
    if (error instanceof PolicyValidationError) return error.issues;
    throw error;
  }
  throw new Error('expected the policy to be rejected');
}

t.test('misspelled key names line, column and fix', async (t) => {
  const issues = issuesOf(`version: 1
rules:
  - id: block-high
    when: "risk >= 0.9"
    acton: block
`);

  t.equal(issues.length, 2);
  t.same(issues[1], {
    code: 'WG_POLICY_UNKNOWN_KEY',
    file: 'p.yaml',
    line: 5,
    column: 5,
    ruleId: 'block-high',
    expected: 'one of the keys id, description, match, when, action, reason, step_up, break_glass in rule #1 (did you mean "action"?)',
    got: '"acton"',
  });
  t.equal(issues[0]!.code, 'WG_POLICY_MISSING_KEY');
  t.equal(formatIssue(issues[1]!), 'p.yaml:5:5: rule block-high: one of the keys id, description, match, when, action, reason, step_up, break_glass in rule #1 (did you mean "action"?), got "acton" [WG_POLICY_UNKNOWN_KEY]');
});

t.test('misspelled match key suggests fix', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: r\n    match: { group: [a] }\n    action: allow\n');

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_UNKNOWN_KEY');
  t.match(issues[0]!.expected, /\(did you mean "groups"\?\)$/);
  t.equal(issues[0]!.line, 4);
  t.equal(issues[0]!.column, 14);
});

t.test('duplicate rule ids rejected', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: same\n    action: allow\n  - id: same\n    action: block\n');

  t.equal(issues.length, 1);
  t.same(issues[0], {
    code: 'WG_POLICY_DUPLICATE_ID',
    file: 'p.yaml',
    line: 5,
    column: 5,
    ruleId: 'same',
    expected: 'a rule id not used before (first used at line 3)',
    got: '"same" again',
  });
});

t.test('all problems reported in one run', async (t) => {
  const issues = issuesOf(`version: 2
conditions:
  night: "time.hour < 6"
rules:
  - id: a
    acton: block
    when: "riks > 0.5"
  - id: b
    action: allow
    match: { methods: [get], sensitivity: [hihg] }
  - id: c
    action: step_up
    when: "conditions.nigth"
  - id: d
    action: allow
    when: "risk + 1 > 2"
  - id: e
    action: block
    step_up: { acr: x }
  - id: default
    action: maybe
`);

  t.same(issues.map((issue) => [issue.line, issue.column, issue.code, issue.ruleId]), [
    [1, 10, 'WG_POLICY_INVALID_VALUE', undefined],
    [5, 5, 'WG_POLICY_MISSING_KEY', 'a'],
    [6, 5, 'WG_POLICY_UNKNOWN_KEY', 'a'],
    [7, 12, 'WG_POLICY_CEL_TYPE', 'a'],
    [10, 24, 'WG_POLICY_INVALID_VALUE', 'b'],
    [10, 44, 'WG_POLICY_INVALID_VALUE', 'b'],
    [12, 13, 'WG_POLICY_MISSING_KEY', 'c'],
    [13, 22, 'WG_POLICY_CEL_TYPE', 'c'],
    [16, 16, 'WG_POLICY_CEL_TYPE', 'd'],
    [19, 5, 'WG_POLICY_INVALID_VALUE', 'e'],
    [20, 9, 'WG_POLICY_INVALID_VALUE', 'default'],
    [21, 13, 'WG_POLICY_INVALID_VALUE', 'default'],
  ]);
  t.match(issues[3]!.expected, /did you mean "risk"/);
  t.match(issues[5]!.expected, /did you mean "high"/);
  t.match(issues[7]!.expected, /did you mean "night"/);
  t.equal(issues[8]!.got, 'arguments (double, int)');
});

t.test('missing version and rules', async (t) => {
  const issues = issuesOf('conditions: {}\n');

  t.same(issues.map((issue) => [issue.code, issue.expected]), [
    ['WG_POLICY_MISSING_KEY', 'the key "version" in the policy file'],
    ['WG_POLICY_MISSING_KEY', 'the key "rules" in the policy file'],
  ]);
});

t.test('empty document rejected', async (t) => {
  const issues = issuesOf('# nothing here\n');

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_MISSING_KEY');
});

t.test('unknown route id suggests configured one', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: r\n    match: { routes: [ehr-exprot] }\n    action: allow\n', { routeIds: ['ehr', 'ehr-export'] });

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_INVALID_VALUE');
  t.equal(issues[0]!.expected, 'a route id from the route configuration (ehr, ehr-export) (did you mean "ehr-export"?)');
});

t.test('step_up rule without step_up block', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: r\n    action: step_up\n');

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_MISSING_KEY');
  t.equal(issues[0]!.line, 4);
  t.equal(issues[0]!.column, 13);
});

t.test('CEL syntax error points into the expression', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: r\n    when: "risk >= 0.9 &&"\n    action: block\n');

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_CEL_SYNTAX');
  t.equal(issues[0]!.line, 4);
  t.ok(issues[0]!.column >= 11 && issues[0]!.column <= 28, `column ${issues[0]!.column} lies inside the when value`);
});

t.test('CEL that is not bool rejected', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: r\n    when: "risk * 2.0"\n    action: block\n');

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_CEL_TYPE');
  t.equal(issues[0]!.expected, 'a CEL expression of type bool');
  t.equal(issues[0]!.got, 'an expression of type double');
  t.same([issues[0]!.line, issues[0]!.column], [4, 12]);
});

t.test('CEL type errors are load errors', async (t) => {
  const cases: [string, RegExp][] = [
    ['principal.nmae == "a"', /did you mean "name"|a field of principal/],
    ['risk > "high"', /operator ">"/],
    ['request.path.startsWith(1)', /function "startsWith"/],
    ['lowerAscii(request.path) == "a"', /undeclared function "lowerAscii"/],
    ['conditions', /"conditions" on its own/],
    ['time.hour + 0.5 > 3.0', /CEL does not mix int and double/],
    ['request.path.matches("(")', /a valid RE2 regular expression/],
    ['google.protobuf.Duration{seconds: 1} == 1', /message types are not available|undeclared/],
  ];

  for (const [when, pattern] of cases) {
    const issues = issuesOf(`version: 1\nrules:\n  - id: r\n    when: ${JSON.stringify(when)}\n    action: block\n`);
    t.equal(issues[0]?.code, 'WG_POLICY_CEL_TYPE', when);
    t.match(issues.map((issue) => `${issue.expected} / ${issue.got}`).join('\n'), pattern, when);
  }
});

t.test('condition cycle rejected', async (t) => {
  const issues = issuesOf(`version: 1
conditions:
  a: "conditions.b"
  b: "conditions.a"
rules:
  - id: r
    when: "conditions.a"
    action: allow
`);

  t.equal(issues.length, 1);
  t.equal(issues[0]!.code, 'WG_POLICY_CONDITION_CYCLE');
  t.equal(issues[0]!.got, 'the cycle a -> b -> a');
});

t.test('wrongly typed values rejected', async (t) => {
  const issues = issuesOf(`version: "1"
rules:
  - id: 7
    action: [allow]
    match: { authenticated: "yes", groups: {a: 1}, paths: [fhir] }
    step_up: { acr: "x", ttl: -5 }
  - just a string
`);

  t.same(issues.map((issue) => [issue.line, issue.code]), [
    [1, 'WG_POLICY_WRONG_TYPE'],
    [3, 'WG_POLICY_WRONG_TYPE'],
    [4, 'WG_POLICY_WRONG_TYPE'],
    [5, 'WG_POLICY_WRONG_TYPE'],
    [5, 'WG_POLICY_WRONG_TYPE'],
    [5, 'WG_POLICY_INVALID_VALUE'],
    [6, 'WG_POLICY_INVALID_VALUE'],
    [7, 'WG_POLICY_WRONG_TYPE'],
  ]);
  t.equal(issues[0]!.got, 'the string "1"');
});

t.test('error message lists every issue', async (t) => {
  try {
    compilePolicy('version: 1\nrules:\n  - id: a\n  - id: b\n', 'p.yaml');
    t.fail('expected a rejection');
  } catch (error) {
    t.ok(error instanceof PolicyValidationError);
    const rejection = error as PolicyValidationError;
    t.equal(rejection.code, 'WG_POLICY_INVALID');
    t.equal(rejection.status, 500);
    t.equal(rejection.message, [
      'policy file p.yaml is invalid (2 problems); fix these and reload:',
      'p.yaml:3:5: rule a: the key "action" in rule #1, got no such key [WG_POLICY_MISSING_KEY]',
      'p.yaml:4:5: rule b: the key "action" in rule #2, got no such key [WG_POLICY_MISSING_KEY]',
    ].join('\n'));
  }
});
