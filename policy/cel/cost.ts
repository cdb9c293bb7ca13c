import { MAX_QUERY_PARAMS } from '../query-parameter-names.ts';
import { estimateRegexSize } from './regex-size.ts';
import type { CelExpr } from './types.ts';
import { CONDITIONS_VARIABLE, POLICY_VARIABLES } from './variables.ts';

/**
 * Maximum nesting of the macros `all`, `exists`, `exists_one`, `map` and `filter` inside
 * each other's bodies. Nested macros multiply their list sizes, and the sizes of request
 * variables are only assumed (see {@link ASSUMED_VARIABLE_SIZE}), so this bounds how far
 * the cost estimate can be off.
 */
export const MAX_MACRO_NESTING = 3;

/**
 * Maximum estimated cost of one evaluation of a `when` expression, in steps. A step is one
 * node of the expression evaluated once, one element compared by `in` or `==`, or
 * {@link CHARACTERS_PER_STEP} characters of work in a string function.
 */
export const MAX_ESTIMATED_COST = 100_000;

/**
 * Maximum length assumed for a string that the request fills, such as `request.path`. The
 * proxy rejects request targets longer than 8192 characters (`MAX_TARGET_LENGTH` in
 * proxy/http/normalize-path.ts), so the path and the query parameter names are at most this long.
 * NOTE: an estimate for the other strings. A header such as Host or a token claim such as
 * a group name is not limited to this length.
 */
export const MAX_STRING_LENGTH = 8192;

/**
 * Characters of work that count as one step: one character read by `contains`,
 * `startsWith`, `endsWith`, `size` or string concatenation, or one character matched
 * against one RE2 instruction by `matches`. Calibrated on `@bufbuild/cel` 0.6.1 with
 * Node 24.21 on a 2-core AMD EPYC VM, where a step took about 40 ns. There `contains` over
 * 8192 characters took 65 µs (estimated 2048 steps, about 82 µs). `matches` of a
 * 1001-instruction regular expression against 8100 characters took 120 ms (estimated
 * 2 million steps, about 82 ms).
 */
export const CHARACTERS_PER_STEP = 4;

/**
 * Steps counted per RE2 instruction of the pattern on every call of `matches`, because
 * `@bufbuild/cel` 0.6.1 compiles the pattern again on each call. Compiling `a{1,1000}x`
 * (1001 instructions) took about 460 µs in the setup of {@link CHARACTERS_PER_STEP}, about
 * 11 steps per instruction.
 * NOTE: a short pattern costs more per instruction (about 94 µs for the 18 instructions of
 * `^/fhir/Patient/[0-9]+$`), so the estimate of a `matches` over a short string is low.
 */
export const REGEX_COMPILE_STEPS_PER_INSTRUCTION = 16;

/**
 * Size assumed for list and map variables that the request fills: `principal.groups`,
 * `principal.amr` and `features`, and any list whose size the estimate cannot follow.
 * NOTE: an estimate. A token or a userinfo response can carry more groups than this, and an
 * expression that iterates over them then costs more than estimated.
 */
export const ASSUMED_VARIABLE_SIZE = 100;

/** Worst-case work of one evaluation of an expression, as {@link estimateCost} returns it. */
export interface CostEstimate {
  /** Estimated steps, counting every macro body once per element of its list or map. */
  readonly cost: number;
  /** Deepest nesting of macros inside macro bodies, 0 without macros. */
  readonly nesting: number;
}

/**
 * Largest number of elements (of a list) or entries (of a map) that a value can have, and
 * the same for its elements or map values. Scalars have `count` 0.
 */
interface Size {
  readonly count: number;
  readonly element?: Size;
  /** Maximum length of a string, absent when the value is not known to be a string. */
  readonly length?: number;
}

interface Estimate extends CostEstimate {
  readonly size: Size;
}

const SCALAR: Size = { count: 0 };
const UNKNOWN: Size = { count: ASSUMED_VARIABLE_SIZE };
const REQUEST_STRING: Size = { count: 0, length: MAX_STRING_LENGTH };

/** Sizes of the list and map variables, by path. See {@link variableSize} for the others. */
const VARIABLE_SIZES: ReadonlyMap<string, Size> = new Map([
  ['request.query_params', { count: MAX_QUERY_PARAMS, element: REQUEST_STRING }],
  ['principal.groups', { count: ASSUMED_VARIABLE_SIZE, element: REQUEST_STRING }],
  ['principal.amr', { count: ASSUMED_VARIABLE_SIZE, element: REQUEST_STRING }],
  ['features', { count: ASSUMED_VARIABLE_SIZE, element: SCALAR }],
]);

/**
 * Estimates the worst-case cost of one evaluation of a parsed, type-checked expression.
 * Every macro body counts once per element of the list or map it iterates, whose size
 * comes from list and map literals, from {@link VARIABLE_SIZES} and from list
 * concatenation, so nested macros multiply. String functions count the characters they
 * may read (see {@link CHARACTERS_PER_STEP}). Short circuits are ignored. Comprehension
 * variables shadow the context variables, as in CEL.
 *
 * A reference `conditions.<name>` counts as the estimate in `conditionCosts`, once for
 * every place it is evaluated, because the compiler inlines named conditions. Estimating
 * each condition once, in dependency order, keeps this linear in the size of the policy
 * even where the estimate itself grows exponentially, as for `c2 = c1 && c1`,
 * `c3 = c2 && c2` and so on.
 */
export function estimateCost(expr: CelExpr, conditionCosts: ReadonlyMap<string, CostEstimate> = new Map()): CostEstimate {
  const { cost, nesting } = new CostEstimator(conditionCosts).visit(expr);

  return { cost, nesting };
}

class CostEstimator {
  readonly #scopes: Map<string, Size>[] = [];
  readonly #conditionCosts: ReadonlyMap<string, CostEstimate>;

  constructor(conditionCosts: ReadonlyMap<string, CostEstimate>) {
    this.#conditionCosts = conditionCosts;
  }

  visit(expr: CelExpr | undefined): Estimate {
    if (expr === undefined) return { cost: 0, nesting: 0, size: SCALAR };

    const kind = expr.exprKind;
    switch (kind.case) {
      case 'constExpr':
        return { cost: 1, nesting: 0, size: kind.value.constantKind.case === 'stringValue' ? { count: 0, length: kind.value.constantKind.value.length } : SCALAR };
      case 'identExpr':
        return { cost: 1, nesting: 0, size: this.#local(kind.value.name) ?? variableSize(kind.value.name) };
      case 'selectExpr':
        return this.#select(kind.value.operand, kind.value.field, kind.value.testOnly);
      case 'callExpr':
        return this.#call(kind.value.function, kind.value.target, kind.value.args);
      case 'listExpr':
        return this.#collection(kind.value.elements, kind.value.elements);
      case 'structExpr': {
        const keys = kind.value.entries.flatMap((entry) => (entry.keyKind.case === 'mapKey' ? [entry.keyKind.value] : []));
        const values = kind.value.entries.flatMap((entry) => (entry.value === undefined ? [] : [entry.value]));
        return this.#collection([...keys, ...values], values);
      }
      case 'comprehensionExpr':
        return this.#comprehension(kind.value);
      default:
        return { cost: 1, nesting: 0, size: SCALAR };
    }
  }

  #local(name: string): Size | undefined {
    for (let i = this.#scopes.length - 1; i >= 0; i--) {
      const size = this.#scopes[i]!.get(name);
      if (size !== undefined) return size;
    }

    return undefined;
  }

  #select(operand: CelExpr | undefined, field: string, testOnly: boolean): Estimate {
    const root = operand?.exprKind.case === 'identExpr' ? operand.exprKind.value.name : undefined;
    const condition = root === CONDITIONS_VARIABLE && !testOnly ? this.#conditionCosts.get(field) : undefined;
    if (condition !== undefined) return { ...condition, size: SCALAR };

    const inner = this.visit(operand);
    let size: Size;
    if (testOnly) size = SCALAR;
    else if (root !== undefined && this.#local(root) === undefined && !VARIABLE_SIZES.has(root)) size = VARIABLE_SIZES.get(`${root}.${field}`) ?? fieldSize(root, field);
    else size = inner.size.element ?? UNKNOWN;

    return { cost: inner.cost + 1, nesting: inner.nesting, size };
  }

  #call(name: string, target: CelExpr | undefined, args: readonly CelExpr[]): Estimate {
    const operands = [...(target === undefined ? [] : [target]), ...args].map((arg) => this.visit(arg));
    const [a, b, c] = operands.map((operand) => operand.size);
    let cost = 1 + sum(operands.map((operand) => operand.cost));
    let size = SCALAR;

    if (name === 'matches') {
      const instructions = regexSize(args[0]!, b!);
      cost += instructions * REGEX_COMPILE_STEPS_PER_INSTRUCTION + stringWork(instructions * lengthOf(a!));
    } else if (name === 'contains') cost += stringWork(lengthOf(a!) + lengthOf(b!));
    else if (name === 'startsWith' || name === 'endsWith') cost += stringWork(Math.min(lengthOf(a!), lengthOf(b!)));
    else if (name === 'size' && a!.length !== undefined) cost += stringWork(a!.length);
    else if (name === '_+_' && (a!.length !== undefined || b!.length !== undefined)) {
      cost += stringWork(lengthOf(a!) + lengthOf(b!));
      size = { count: 0, length: lengthOf(a!) + lengthOf(b!) };
    } else if (name === '@in') cost += b!.count;
    else if (name === '_==_' || name === '_!=_') cost += Math.max(a!.count, b!.count);
    else if (name === '_[_]') size = a!.element ?? UNKNOWN;
    else if (name === '_?_:_') size = join(b!, c!);
    else if (name === 'dyn') size = a ?? SCALAR;
    else if (name === '_+_' && (a!.count > 0 || b!.count > 0)) size = { count: a!.count + b!.count, element: joinElements(a!, b!) };

    return { cost, nesting: Math.max(0, ...operands.map((operand) => operand.nesting)), size };
  }

  /** Estimates a list literal (`values` are its elements) or a map literal (`values` are its values). */
  #collection(children: readonly CelExpr[], values: readonly CelExpr[]): Estimate {
    const visited = children.map((child) => this.visit(child));
    const valueSizes = visited.slice(children.length - values.length).map((value) => value.size);
    const element = valueSizes.reduce<Size | undefined>((joined, size) => (joined === undefined ? size : join(joined, size)), undefined);

    return {
      cost: 1 + sum(visited.map((child) => child.cost)),
      nesting: Math.max(0, ...visited.map((child) => child.nesting)),
      size: { count: values.length, element: element ?? SCALAR },
    };
  }

  /**
   * Estimates a macro after expansion: `iterRange` is evaluated once, `loopCondition` and
   * `loopStep` once per element, and `result` once. A step that adds to a list accumulator,
   * as `map` and `filter` do, makes the result as long as the range.
   */
  #comprehension(value: Extract<CelExpr['exprKind'], { case: 'comprehensionExpr' }>['value']): Estimate {
    const range = this.visit(value.iterRange);
    const init = this.visit(value.accuInit);
    const element = range.size.element ?? UNKNOWN;
    const scope = new Map<string, Size>([[value.iterVar, element], [value.accuVar, init.size]]);
    if (value.iterVar2 !== '') scope.set(value.iterVar2, element);

    this.#scopes.push(scope);
    const condition = this.visit(value.loopCondition);
    const step = this.visit(value.loopStep);
    const growth = Math.max(0, step.size.count - init.size.count);
    scope.set(value.accuVar, { count: init.size.count + range.size.count * growth, element: joinElements(init.size, step.size) });
    const result = this.visit(value.result);
    this.#scopes.pop();

    const body = condition.nesting > step.nesting ? condition : step;
    return {
      cost: range.cost + init.cost + range.size.count * (condition.cost + step.cost) + result.cost,
      nesting: Math.max(range.nesting, init.nesting, result.nesting, body.nesting + 1),
      size: result.size,
    };
  }
}

/** Returns the size of a context variable. A variable with fields, such as `request`, is a map of its fields. */
function variableSize(name: string): Size {
  const known = VARIABLE_SIZES.get(name);
  if (known !== undefined) return known;

  const type = POLICY_VARIABLES.get(name);
  return type?.kind === 'record' ? { count: type.fields.size, element: UNKNOWN } : SCALAR;
}

/** Returns the size of a field of a context variable, such as `request.path`. */
function fieldSize(root: string, field: string): Size {
  const type = POLICY_VARIABLES.get(root);
  const fieldType = type?.kind === 'record' ? type.fields.get(field) : undefined;

  return fieldType?.kind === 'string' ? REQUEST_STRING : SCALAR;
}

/** Returns a size at least as large as both. */
function join(a: Size, b: Size): Size {
  const length = a.length === undefined || b.length === undefined ? undefined : Math.max(a.length, b.length);
  const count = Math.max(a.count, b.count);
  if (a.element === undefined && b.element === undefined) return length === undefined ? { count } : { count, length };

  return { count, element: joinElements(a, b) };
}

/** Returns the maximum length of a string, {@link MAX_STRING_LENGTH} when it is not known. */
function lengthOf(size: Size): number {
  return size.length ?? MAX_STRING_LENGTH;
}

/**
 * Returns the size in RE2 instructions of the pattern passed to `matches`: estimated from
 * the pattern when it is a literal, else the maximum length of the pattern string.
 */
function regexSize(pattern: CelExpr, size: Size): number {
  const kind = pattern.exprKind;
  if (kind.case === 'constExpr' && kind.value.constantKind.case === 'stringValue') return estimateRegexSize(kind.value.constantKind.value);

  return lengthOf(size);
}

function stringWork(characters: number): number {
  return Math.ceil(characters / CHARACTERS_PER_STEP);
}

function joinElements(a: Size, b: Size): Size {
  if (a.element === undefined) return b.element ?? SCALAR;
  if (b.element === undefined) return a.element;

  return join(a.element, b.element);
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
