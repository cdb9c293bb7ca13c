import { parse } from '@bufbuild/cel';
import t from 'tap';

import { ASSUMED_VARIABLE_SIZE, CHARACTERS_PER_STEP, estimateCost, MAX_ESTIMATED_COST, MAX_MACRO_NESTING, MAX_STRING_LENGTH } from '../../policy/cel/cost.ts';
import { estimateRegexSize, largestRepetitionCount, MAX_REGEX_REPETITION } from '../../policy/cel/regex-size.ts';
import { compilePolicy, PolicyValidationError, type PolicyIssue } from '../../policy/index.ts';
import { makeContext } from './helpers.ts';

const FIX = 'iterate over fewer or shorter lists, use shorter regular expressions with smaller repetition counts, or move list and path checks into match keys such as groups and paths';
const COST_EXPECTED = `an estimated cost of at most ${MAX_ESTIMATED_COST} steps per evaluation (a macro body counts once per element it iterates over, so nested macros multiply); ${FIX}`;
const NESTING_EXPECTED = `macros (all, exists, exists_one, map, filter) nested at most ${MAX_MACRO_NESTING} deep; ${FIX}`;

/** Returns a list literal of `length` ones. */
function ones(length: number): string {
  return `[${Array(length).fill('1').join(', ')}]`;
}

function policyWith(when: string, conditions = ''): string {
  return `version: 1\n${conditions}rules:\n  - id: r\n    action: allow\n    when: ${JSON.stringify(when)}\n`;
}

function issuesOf(source: string): readonly PolicyIssue[] {
  try {
    compilePolicy(source, 'cost.yaml');
  } catch (error) {
    if (error instanceof PolicyValidationError) return error.issues;
    throw error;
  }
  return [];
}

function estimate(expression: string) {
  return estimateCost(parse(expression).expr);
}

t.test('nested macros over long literals rejected', async (t) => {
  for (const length of [200, 300]) {
    const when = `${ones(length)}.all(a, ${ones(length)}.all(b, ${ones(length)}.all(c, a + b + c == 3)))`;

    const issues = issuesOf(policyWith(when));

    t.equal(issues.length, 1, `${length} elements: one issue`);
    t.match(issues[0], { code: 'WG_POLICY_CEL_COST', ruleId: 'r', line: 5, column: 12, expected: COST_EXPECTED });
    const cost = Number(/^an estimated cost of (\d+) steps$/.exec(issues[0]!.got)?.[1]);
    t.ok(cost > length ** 3, `${length} elements: the estimate ${cost} counts every inner iteration`);
  }
});

t.test('macro nesting limit', async (t) => {
  const nested = (depth: number) => Array.from({ length: depth }, (_, i) => `[1, 2].all(v${i}, `).join('') + 'true' + ')'.repeat(depth);

  const policy = compilePolicy(policyWith(nested(MAX_MACRO_NESTING)), 'cost.yaml');
  t.equal(policy.decide(makeContext()).rule, 'r', `${MAX_MACRO_NESTING} levels are accepted and evaluated`);

  const issues = issuesOf(policyWith(nested(MAX_MACRO_NESTING + 1)));
  t.equal(issues.length, 1);
  t.match(issues[0], { code: 'WG_POLICY_CEL_COST', ruleId: 'r', expected: NESTING_EXPECTED, got: `macros nested ${MAX_MACRO_NESTING + 1} deep` });
  t.equal(estimate(`[1].map(a, [1].all(b, true)).all(c, [1].exists(d, true))`).nesting, 2, 'a macro in the range of another does not nest in its body');
});

t.test('cost estimate follows list sizes', async (t) => {
  const inner = `${ones(100)}.all(c, c == 1)`;
  const single = estimate(inner).cost;
  t.ok(estimate(`${ones(200)}.all(c, c == 1)`).cost > 1.9 * single, 'twice the elements, about twice the cost');

  const ranges: [range: string, length: number][] = [
    [ones(100), 100],
    [`(${ones(100)} + ${ones(100)})`, 200],
    [`${ones(100)}.map(a, a + 1)`, 100],
    [`${ones(100)}.filter(a, a == 1)`, 100],
    [`[${ones(100)}][0]`, 100],
    [`{"k": ${ones(100)}}["k"]`, 100],
    [`dyn(${ones(100)})`, 100],
    [`(risk > 0.5 ? ${ones(100)} : [1])`, 100],
  ];
  for (const [range, length] of ranges) {
    const cost = estimate(`${range}.all(b, ${inner})`).cost;
    t.ok(cost > 0.9 * length * single, `${range.slice(0, 40)}... counts as ${length} elements (${cost})`);
  }
});

t.test('cost estimate of request variables', async (t) => {
  const body = 'g == "x"';
  const groups = estimate(`principal.groups.exists(g, ${body})`).cost;
  const queryParams = estimate(`request.query_params.exists(g, ${body})`).cost;
  const perElement = estimate(`[${'"x"'}].exists(g, ${body})`).cost;

  t.ok(groups >= ASSUMED_VARIABLE_SIZE * (perElement - 4), `principal.groups counts as ${ASSUMED_VARIABLE_SIZE} groups (${groups})`);
  t.ok(queryParams < groups / 2, `request.query_params counts as at most 32 names (${queryParams})`);
  t.ok(estimate(`request.all(k, ${ones(1000)}.all(v, v == 1))`).cost > 5 * 1000, 'a variable with fields iterates over its fields');
  t.ok(estimate(`${ones(3)}.all(principal, principal == 1)`).cost < perElement * 10, 'a macro variable shadows a context variable');
});

t.test('costly named condition reported once', async (t) => {
  const costly = `${ones(200)}.all(a, ${ones(100)}.all(b, a == b))`;
  const conditions = `conditions:\n  user: "conditions.costly || risk > 0.5"\n  costly: ${JSON.stringify(costly)}\n`;

  const issues = issuesOf(policyWith('conditions.user', conditions));

  t.equal(issues.length, 1, 'the conditions and the rule that use it are not reported again');
  t.match(issues[0], { code: 'WG_POLICY_CEL_COST', ruleId: 'conditions.costly', line: 4, column: 12, expected: COST_EXPECTED });
});

t.test('cheap conditions nested in a rule rejected', async (t) => {
  const conditions = `conditions:\n  inner: ${JSON.stringify(`${ones(60)}.all(a, ${ones(60)}.all(b, a == b))`)}\n`;

  const issues = issuesOf(policyWith(`${ones(60)}.all(c, conditions.inner)`, conditions));

  t.equal(issues.length, 1);
  t.match(issues[0], { code: 'WG_POLICY_CEL_COST', ruleId: 'r', line: 7, column: 12, expected: COST_EXPECTED });
});

t.test('cost of a rule with other errors reported', async (t) => {
  const source = `version: 1\nrules:\n  - id: r\n    action: alow\n    when: ${JSON.stringify(`${ones(200)}.all(a, ${ones(200)}.all(b, ${ones(200)}.all(c, true)))`)}\n`;

  const codes = issuesOf(source).map((issue) => issue.code);

  t.same(codes, ['WG_POLICY_INVALID_VALUE', 'WG_POLICY_CEL_COST'], 'every problem of the file in one run');
});

t.test('documented patterns within the limits', async (t) => {
  const expressions = [
    'request.path == "/fhir/Patient" && request.query_params.exists(p, p in ["name", "family", "given", "birthdate", "phone", "telecom", "address", "identifier"])',
    'request.path == "/fhir/Patient" && !(size(request.query_params) == 1 && "_id" in request.query_params)',
    "principal.groups.exists(g, g.startsWith('ward-'))",
    `principal.groups.exists(g, g in ${JSON.stringify(Array.from({ length: 200 }, (_, i) => `group-${i}`))})`,
  ];

  for (const expression of expressions) {
    t.same(issuesOf(policyWith(expression)), [], expression.slice(0, 60));
  }
});

t.test('regex size estimate', async (t) => {
  const cases: [pattern: string, size: number][] = [
    ['a', 1],
    ['abc', 3],
    ['a|b', 3],
    ['a*', 2],
    ['a{5}', 5],
    ['a{2,7}?', 7],
    ['a{3,}', 4],
    ['(?:ab){10}', 20],
    ['(ab){10}', 40],
    ['(?P<name>a)', 3],
    ['(?:a{10}){10}', 100],
    ['(?i)[\\p{Greek}\\p{Latin}]{1,1000}', 1000],
    ['\\pL\\x{41}\\x41\\d', 4],
    ['\\Qa{100}\\E', 6],
    ['[]a{}[:alpha:]\\]]{3}', 3],
    ['^/fhir/Patient/[0-9]+$', 18],
    ['a{', 2],
  ];

  for (const [pattern, size] of cases) t.equal(estimateRegexSize(pattern), size, pattern);
});

t.test('matches cost grows with input and regex', async (t) => {
  const single = estimate("request.path.matches('a{1,10}')").cost;
  const large = estimate("request.path.matches('a{1,100}')").cost;
  const literal = estimate("'/fhir/Patient/1'.matches('a{1,100}')").cost;

  t.ok(single >= (10 * MAX_STRING_LENGTH) / CHARACTERS_PER_STEP, `a{1,10} over request.path counts every character (${single})`);
  t.ok(large > 9 * single, `a{1,100} costs about ten times a{1,10} (${large}, ${single})`);
  t.ok(literal < large / 10, `a short literal input costs less (${literal})`);
  t.ok(estimate('request.path.matches(request.host)').cost > MAX_ESTIMATED_COST, 'a pattern that is not a literal counts as a long one');
});

t.test('costly regular expressions rejected', async (t) => {
  const pattern = "'(?i)(?:[\\\\p{Greek}\\\\p{Latin}]{1,100})x'";
  const expressions = [
    `request.path.matches(${pattern})`,
    `request.query_params.exists(p, request.path.matches(${pattern}))`,
    `request.query_params.exists(p, request.query_params.exists(q, request.path.matches(${pattern})))`,
    "request.query_params.exists(p, request.path.matches('(?i)(?:[\\\\p{Greek}\\\\p{Latin}]{1,10})x'))",
  ];

  for (const expression of expressions) {
    const issues = issuesOf(policyWith(expression));
    t.equal(issues.length, 1, `${expression.slice(0, 70)}: one issue`);
    t.match(issues[0], { code: 'WG_POLICY_CEL_COST', ruleId: 'r', expected: COST_EXPECTED }, expression.slice(0, 70));
  }
});

t.test('large repetition counts rejected', async (t) => {
  const expected = `counted repetitions of at most ${MAX_REGEX_REPETITION} in a regular expression for matches(); use + or *, or a smaller count`;
  const cases: [expression: string, got: string][] = [
    ["request.query_params.exists(p, request.path.matches('(?i)(?:[\\\\p{Greek}\\\\p{Latin}]{1,1000})x'))", '"(?i)(?:[\\\\p{Greek}\\\\p{Latin}]{1,1000})x" with a repetition count of 1000'],
    ["'abc'.matches('a{101}')", '"a{101}" with a repetition count of 101'],
    ["'abc'.matches('(?:a{2,}){200,}')", '"(?:a{2,}){200,}" with a repetition count of 200'],
  ];

  for (const [expression, got] of cases) {
    const issues = issuesOf(policyWith(expression));
    t.equal(issues.length, 1, `${expression.slice(0, 70)}: one issue`);
    t.match(issues[0], { code: 'WG_POLICY_CEL_COST', ruleId: 'r', expected, got }, expression.slice(0, 70));
  }
  t.same(issuesOf(policyWith(`'abc'.matches('a{1,${MAX_REGEX_REPETITION}}')`)), [], `a count of ${MAX_REGEX_REPETITION} is accepted`);
  t.equal(largestRepetitionCount('a+b*c?'), 0, 'no counted repetition');
});

t.test('string functions count characters', async (t) => {
  const perString = MAX_STRING_LENGTH / CHARACTERS_PER_STEP;
  const expressions: [expression: string, minimum: number][] = [
    ["request.path.contains('x')", perString],
    ['size(request.path) > 1', perString],
    ["request.path.startsWith(request.host)", perString],
    ["request.path.endsWith(request.host)", perString],
    ["(request.path + request.host).contains('x')", 3 * perString],
    ["request.query_params.exists(p, p.contains('x'))", 32 * perString],
  ];

  for (const [expression, minimum] of expressions) {
    const cost = estimate(expression).cost;
    t.ok(cost >= minimum, `${expression}: ${cost} >= ${minimum}`);
  }
  t.ok(estimate("'abc'.contains('b') && 'abc'.startsWith('a') && size('abc') == 3").cost < 20, 'short literals cost a few steps');
  t.ok(estimate("request.path.startsWith('/fhir')").cost < 10, 'startsWith reads at most the prefix');
  t.ok(estimate('1 + 2 == 3').cost < 10, 'adding numbers reads no characters');
});

t.test('regular expressions in examples within the limits', async (t) => {
  const expressions = [
    "request.method == 'GET' && request.host.startsWith('ehr.') && request.path.matches('^/fhir/Patient/[0-9]+$') && request.ip == '127.0.0.1'",
    "request.path.matches('(?i)(?:[\\\\p{Greek}\\\\p{Latin}]{1,10})x')",
    "request.ip.startsWith('10.30.')",
    "request.path.startsWith('/fhir/Observation')",
  ];

  for (const expression of expressions) {
    t.same(issuesOf(policyWith(expression)), [], expression.slice(0, 60));
  }
});

/** Returns named conditions `c1` to `cN` where each `c<i>` is `c<i-1> && c<i-1>`. */
function chainedConditions(length: number): string {
  let conditions = 'conditions:\n  c1: "risk > 0.5"\n';
  for (let i = 2; i <= length; i++) conditions += `  c${i}: "conditions.c${i - 1} && conditions.c${i - 1}"\n`;
  return conditions;
}

t.test('chained conditions estimated once each', async (t) => {
  const issues = issuesOf(policyWith('conditions.c22', chainedConditions(22)));

  t.equal(issues.length, 1, 'only the first condition over the limit is reported');
  t.match(issues[0], { code: 'WG_POLICY_CEL_COST', ruleId: 'conditions.c16', expected: COST_EXPECTED });
  t.equal(issues[0]!.got, `an estimated cost of ${2 ** 17 - 1} steps`, 'the estimate counts c1 once per evaluation, 2^15 times');
});

t.test('long condition chain validated', async (t) => {
  // An estimator that visits each use of a condition would take 2^2000 steps here and never
  // finish, so the test would run into tap's timeout.
  const issues = issuesOf(policyWith('conditions.c2000', chainedConditions(2000)));

  t.match(issues, [{ code: 'WG_POLICY_CEL_COST', ruleId: 'conditions.c16' }]);
});

t.test('chain under the limit evaluated', async (t) => {
  const policy = compilePolicy(policyWith('conditions.c15', chainedConditions(15)), 'cost.yaml');

  t.equal(policy.decide(makeContext({ risk: 0.9 })).rule, 'r', 'a chain of 15 is accepted and matches');
  t.not(policy.decide(makeContext({ risk: 0.1 })).rule, 'r', 'and does not match when c1 is false');
});
