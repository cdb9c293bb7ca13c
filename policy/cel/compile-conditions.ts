import { celEnv, isCelError, parse, plan, run } from '@bufbuild/cel';

import type { CelSource, PolicyDefinition } from '../definition.ts';
import type { NodeReader } from '../yaml/node-reader.ts';
import { checkExpression } from './checker.ts';
import { estimateCost, MAX_ESTIMATED_COST, MAX_MACRO_NESTING, type CostEstimate } from './cost.ts';
import { compileNative } from './native.ts';
import { largestRepetitionCount, MAX_REGEX_REPETITION } from './regex-size.ts';
import { typeName, type CelExpr } from './types.ts';
import { CONDITIONS_VARIABLE, POLICY_VARIABLES, type PolicyBindings } from './variables.ts';

/** Result of evaluating a `when` expression: whether it matched, or why it could not be evaluated. */
export type ConditionOutcome = boolean | string;

/** A compiled `when` expression. */
export interface CompiledCondition {
  readonly expression: string;
  /** Whether it runs as a JavaScript closure instead of through the CEL interpreter. */
  readonly native: boolean;
  /** Returns true or false, or a message when evaluation failed. Exceptions are caught and returned as messages. */
  evaluate(bindings: PolicyBindings): ConditionOutcome;
}

const ENVIRONMENT = celEnv();

interface ParsedSource {
  readonly expr: CelExpr;
  readonly positions: Readonly<Record<string, number>>;
}

/**
 * Parses, type-checks and plans the named conditions and every rule's `when`. Problems are
 * added to `reader.issues` with the position of the offending character. Returns the
 * compiled `when` of each rule by rule id.
 */
export function compileConditions(reader: NodeReader, definition: PolicyDefinition): Map<string, CompiledCondition> {
  const conditionNames = new Set(definition.conditions.map((condition) => condition.id));
  const conditionExprs = new Map<string, CelExpr>();
  const references = new Map<string, ReadonlySet<string>>();

  for (const condition of definition.conditions) {
    reader.ruleId = `${CONDITIONS_VARIABLE}.${condition.id}`;
    const checked = parseAndCheck(reader, condition.cel, conditionNames);
    if (checked !== undefined) {
      conditionExprs.set(condition.id, checked.expr);
      references.set(condition.id, checked.conditionRefs);
    }
  }
  reader.ruleId = undefined;

  const cyclic = findCycle(references);
  if (cyclic !== undefined) {
    const condition = definition.conditions.find((candidate) => candidate.id === cyclic[0])!;
    reader.ruleId = `${CONDITIONS_VARIABLE}.${condition.id}`;
    reader.report('WG_POLICY_CONDITION_CYCLE', condition.cel.locate(0), 'conditions that do not refer to themselves through other conditions', `the cycle ${cyclic.join(' -> ')}`);
    reader.ruleId = undefined;
    for (const name of cyclic) conditionExprs.delete(name);
  }
  dropConditionsWithMissingReferences(conditionExprs, references);

  const inlined = new Map<string, CelExpr>();
  const inline = (expr: CelExpr): CelExpr => substituteConditions(expr, (name) => {
    let body = inlined.get(name);
    if (body === undefined) {
      body = inline(conditionExprs.get(name)!);
      inlined.set(name, body);
    }
    return body;
  });

  const conditionCosts = rejectCostlyConditions(reader, definition, conditionExprs, references);
  dropConditionsWithMissingReferences(conditionExprs, references);

  for (const { ruleId, cel } of definition.unusedWhens) {
    reader.ruleId = ruleId;
    const checked = parseAndCheck(reader, cel, conditionNames);
    if (checked !== undefined && [...checked.conditionRefs].every((name) => conditionExprs.has(name))) checkCost(reader, cel, checked.expr, conditionCosts);
    reader.ruleId = undefined;
  }

  const compiled = new Map<string, CompiledCondition>();
  for (const rule of definition.rules) {
    if (rule.when === undefined) continue;

    reader.ruleId = rule.id;
    const checked = parseAndCheck(reader, rule.when, conditionNames);
    const missing = checked === undefined || [...checked.conditionRefs].some((name) => !conditionExprs.has(name));
    const affordable = !missing && checkCost(reader, rule.when, checked.expr, conditionCosts);
    reader.ruleId = undefined;
    if (!affordable) continue;

    compiled.set(rule.id, buildCondition(rule.when.expression, inline(checked.expr)));
  }

  return compiled;
}

/**
 * Reports every named condition whose cost, with the conditions it uses inlined, is over
 * the limits, and removes it. A condition that is over only because it uses another one
 * that is over is removed without a report of its own. Returns the estimate of every
 * condition, computed once each in dependency order, for the rules to use.
 */
function rejectCostlyConditions(
  reader: NodeReader,
  definition: PolicyDefinition,
  conditionExprs: Map<string, CelExpr>,
  references: ReadonlyMap<string, ReadonlySet<string>>,
): ReadonlyMap<string, CostEstimate> {
  const costs = new Map<string, CostEstimate>();
  const costly = new Map<string, CostProblem>();
  const estimate = (name: string): CostEstimate => {
    let known = costs.get(name);
    if (known === undefined) {
      for (const reference of references.get(name) ?? []) estimate(reference);
      known = estimateCost(conditionExprs.get(name)!, costs);
      costs.set(name, known);
    }
    return known;
  };
  for (const name of conditionExprs.keys()) {
    const problem = costProblem(estimate(name));
    if (problem !== undefined) costly.set(name, problem);
  }

  for (const condition of definition.conditions) {
    const problem = costly.get(condition.id);
    if (problem === undefined) continue;

    const causedElsewhere = [...(references.get(condition.id) ?? [])].some((name) => costly.has(name));
    if (!causedElsewhere) {
      reader.ruleId = `${CONDITIONS_VARIABLE}.${condition.id}`;
      reader.report('WG_POLICY_CEL_COST', condition.cel.locate(0), problem.expected, problem.got);
      reader.ruleId = undefined;
    }
    conditionExprs.delete(condition.id);
  }

  return costs;
}

interface CostProblem {
  readonly expected: string;
  readonly got: string;
}

/**
 * Reports `WG_POLICY_CEL_COST` at the start of the expression when it is over the limits,
 * with the named conditions it uses counted as in `conditionCosts`. Returns whether it is
 * within them.
 */
function checkCost(reader: NodeReader, cel: CelSource, expr: CelExpr, conditionCosts: ReadonlyMap<string, CostEstimate>): boolean {
  const problem = costProblem(estimateCost(expr, conditionCosts));
  if (problem !== undefined) reader.report('WG_POLICY_CEL_COST', cel.locate(0), problem.expected, problem.got);

  return problem === undefined;
}

/**
 * Returns what is wrong when the estimate of an expression, with named conditions inlined,
 * nests macros deeper than {@link MAX_MACRO_NESTING} or has a cost above
 * {@link MAX_ESTIMATED_COST}. Such an expression would hold up every request it is
 * evaluated for, and the health endpoint with them, because evaluation is synchronous.
 */
function costProblem({ cost, nesting }: CostEstimate): CostProblem | undefined {
  const fix = 'iterate over fewer or shorter lists, use shorter regular expressions with smaller repetition counts, or move list and path checks into match keys such as groups and paths';

  if (nesting > MAX_MACRO_NESTING) {
    return { expected: `macros (all, exists, exists_one, map, filter) nested at most ${MAX_MACRO_NESTING} deep; ${fix}`, got: `macros nested ${nesting} deep` };
  }
  if (cost > MAX_ESTIMATED_COST) {
    return {
      expected: `an estimated cost of at most ${MAX_ESTIMATED_COST} steps per evaluation (a macro body counts once per element it iterates over, so nested macros multiply); ${fix}`,
      got: `an estimated cost of ${Math.ceil(cost)} steps`,
    };
  }

  return undefined;
}

function parseAndCheck(reader: NodeReader, cel: CelSource, conditionNames: ReadonlySet<string>): (ParsedSource & { conditionRefs: ReadonlySet<string> }) | undefined {
  const parsed = parseSource(reader, cel);
  if (parsed === undefined) return undefined;

  const result = checkExpression(parsed.expr, POLICY_VARIABLES, conditionNames);
  const at = (exprId: bigint) => cel.locate(parsed.positions[exprId.toString()] ?? 0);
  for (const problem of result.problems) reader.report('WG_POLICY_CEL_TYPE', at(problem.exprId), problem.expected, problem.got);

  let validPatterns = true;
  for (const { exprId: id, pattern } of result.patterns) {
    const outcome = run("''.matches(pattern)", { pattern });
    if (isCelError(outcome)) {
      reader.report('WG_POLICY_CEL_TYPE', at(id), 'a valid RE2 regular expression for matches()', `${JSON.stringify(pattern)} (${outcome.message})`);
      validPatterns = false;
      continue;
    }

    const count = largestRepetitionCount(pattern);
    if (count > MAX_REGEX_REPETITION) {
      const expected = `counted repetitions of at most ${MAX_REGEX_REPETITION} in a regular expression for matches(); use + or *, or a smaller count`;
      reader.report('WG_POLICY_CEL_COST', at(id), expected, `${JSON.stringify(pattern)} with a repetition count of ${count}`);
      validPatterns = false;
    }
  }

  if (result.type.kind !== 'bool' && result.type.kind !== 'dyn' && result.problems.length === 0) {
    reader.report('WG_POLICY_CEL_TYPE', cel.locate(0), 'a CEL expression of type bool', `an expression of type ${typeName(result.type)}`);
    return undefined;
  }
  if (result.problems.length > 0 || !validPatterns) return undefined;

  return { ...parsed, conditionRefs: result.conditionRefs };
}

function parseSource(reader: NodeReader, cel: CelSource): ParsedSource | undefined {
  try {
    const parsed = parse(cel.expression);
    return { expr: parsed.expr, positions: (parsed.sourceInfo?.positions ?? {}) as Record<string, number> };
  } catch (error) {
    const location = (error as { location?: { start?: { offset?: number } } }).location;
    const message = error instanceof Error ? error.message.replace(/^<input>:\d+:\d+: /, '') : String(error);
    reader.report('WG_POLICY_CEL_SYNTAX', cel.locate(location?.start?.offset ?? 0), 'a valid CEL expression', message);
    return undefined;
  }
}

function buildCondition(expression: string, expr: CelExpr): CompiledCondition {
  const native = compileNative(expr);
  if (native !== undefined) {
    const evaluate = (bindings: PolicyBindings): ConditionOutcome => {
      try {
        return native(bindings);
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    };
    return { expression, native: true, evaluate };
  }

  const program = plan(ENVIRONMENT, expr);
  const evaluate = (bindings: PolicyBindings): ConditionOutcome => {
    try {
      const result = program(bindings as unknown as Record<string, never>);
      if (typeof result === 'boolean') return result;
      if (isCelError(result)) return result.message;
      return `expected a bool result, got ${typeof result}`;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  };

  return { expression, native: false, evaluate };
}

/** Removes, until none is left, every condition that refers to a condition that failed to compile. */
function dropConditionsWithMissingReferences(conditionExprs: Map<string, CelExpr>, references: ReadonlyMap<string, ReadonlySet<string>>): void {
  let changed = true;
  while (changed) {
    changed = false;
    for (const name of [...conditionExprs.keys()]) {
      const refs = references.get(name) ?? new Set<string>();
      if ([...refs].some((ref) => !conditionExprs.has(ref))) {
        conditionExprs.delete(name);
        changed = true;
      }
    }
  }
}

/** Returns the cycle as a list of names when conditions refer to each other in a loop. */
function findCycle(references: ReadonlyMap<string, ReadonlySet<string>>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];

  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...path.slice(path.indexOf(name)), name];

    state.set(name, 'visiting');
    path.push(name);
    for (const next of references.get(name) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    state.set(name, 'done');
    return undefined;
  };

  for (const name of references.keys()) {
    const cycle = visit(name);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

/**
 * Returns a copy of `expr` in which every `conditions.<name>` is replaced by that
 * condition's expression. Inlining at load time keeps CEL's short-circuit semantics and
 * costs nothing per request.
 */
function substituteConditions(expr: CelExpr, body: (name: string) => CelExpr): CelExpr {
  const kind = expr.exprKind;
  switch (kind.case) {
    case 'selectExpr': {
      const operand = kind.value.operand;
      if (operand?.exprKind.case === 'identExpr' && operand.exprKind.value.name === CONDITIONS_VARIABLE && !kind.value.testOnly) {
        return body(kind.value.field);
      }
      return { ...expr, exprKind: { case: 'selectExpr', value: { ...kind.value, operand: operand && substituteConditions(operand, body) } } };
    }
    case 'callExpr':
      return {
        ...expr,
        exprKind: {
          case: 'callExpr',
          value: { ...kind.value, target: kind.value.target && substituteConditions(kind.value.target, body), args: kind.value.args.map((arg) => substituteConditions(arg, body)) },
        },
      };
    case 'listExpr':
      return { ...expr, exprKind: { case: 'listExpr', value: { ...kind.value, elements: kind.value.elements.map((item) => substituteConditions(item, body)) } } };
    case 'structExpr':
      return {
        ...expr,
        exprKind: {
          case: 'structExpr',
          value: {
            ...kind.value,
            entries: kind.value.entries.map((entry) => ({
              ...entry,
              keyKind: entry.keyKind.case === 'mapKey' ? { case: 'mapKey' as const, value: substituteConditions(entry.keyKind.value, body) } : entry.keyKind,
              value: entry.value && substituteConditions(entry.value, body),
            })),
          },
        },
      };
    case 'comprehensionExpr': {
      const value = kind.value;
      const sub = (child: CelExpr | undefined) => child && substituteConditions(child, body);
      return {
        ...expr,
        exprKind: {
          case: 'comprehensionExpr',
          value: { ...value, iterRange: sub(value.iterRange), accuInit: sub(value.accuInit), loopCondition: sub(value.loopCondition), loopStep: sub(value.loopStep), result: sub(value.result) },
        },
      };
    }
    default:
      return expr;
  }
}
