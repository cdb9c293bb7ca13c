import { parse } from '@bufbuild/cel';
import t from 'tap';

import { ASSUMED_VARIABLE_SIZE, estimateCost, MAX_ESTIMATED_COST, MAX_MACRO_NESTING } from '../../policy/cel/cost.ts';
import { compilePolicy, PolicyValidationError, type PolicyIssue } from '../../policy/index.ts';
import { makeContext } from './helpers.ts';

const FIX = 'iterate over fewer or shorter lists, or move list checks into match keys such as groups and paths';
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
