import { didYouMean } from '../yaml/suggest.ts';
import {
  BOOL, BYTES, DOUBLE, DYN, INT, NULL, STRING, UINT,
  isComparable, isNumeric, joinTypes, listOf, mapOf, typeName,
  type CelCheckType, type CelExpr,
} from './types.ts';
import { CONDITIONS_VARIABLE } from './variables.ts';

/** A type error found by {@link checkExpression}, at the node with id `exprId`. */
export interface CheckProblem {
  readonly exprId: bigint;
  readonly expected: string;
  readonly got: string;
}

/** Result of checking one expression. */
export interface CheckResult {
  readonly type: CelCheckType;
  readonly problems: readonly CheckProblem[];
  /** Named conditions the expression refers to as `conditions.<name>`. */
  readonly conditionRefs: ReadonlySet<string>;
  /** Constant regular expressions passed to `matches`, to be compiled at load time. */
  readonly patterns: readonly { readonly exprId: bigint; readonly pattern: string }[];
}

/**
 * Type-checks a parsed CEL expression against the declared variables.
 *
 * NOTE: `@bufbuild/cel` 0.6.1 does not export a checker, and its internal one handles
 * only constants and identifiers. This one covers the subset of CEL that policies use:
 * literals, variables, field selection, indexing, `has()`, the logical, comparison,
 * arithmetic and `in` operators, the conditional operator, the standard macros (`all`,
 * `exists`, `exists_one`, `map`, `filter`), `size`, the string methods `contains`,
 * `startsWith`, `endsWith` and `matches`, and the conversions `int`, `uint`, `double`,
 * `string`, `bool` and `dyn`. Other functions are reported as undeclared.
 */
export function checkExpression(
  expr: CelExpr,
  variables: ReadonlyMap<string, CelCheckType>,
  conditionNames: ReadonlySet<string>,
): CheckResult {
  const checker = new Checker(variables, conditionNames);
  const type = checker.check(expr);

  return { type, problems: checker.problems, conditionRefs: checker.conditionRefs, patterns: checker.patterns };
}

const COMPARISONS = new Set(['_<_', '_<=_', '_>_', '_>=_']);
const ARITHMETIC = new Set(['_+_', '_-_', '_*_', '_/_', '_%_']);
const STRING_METHODS = new Set(['contains', 'startsWith', 'endsWith', 'matches']);
const CONVERSIONS: ReadonlyMap<string, CelCheckType> = new Map([
  ['int', INT], ['uint', UINT], ['double', DOUBLE], ['string', STRING], ['bool', BOOL], ['dyn', DYN],
]);
const KNOWN_FUNCTIONS = ['size', ...STRING_METHODS, ...CONVERSIONS.keys()];

class Checker {
  readonly problems: CheckProblem[] = [];
  readonly conditionRefs = new Set<string>();
  readonly patterns: { exprId: bigint; pattern: string }[] = [];
  readonly #variables: ReadonlyMap<string, CelCheckType>;
  readonly #conditionNames: ReadonlySet<string>;
  readonly #scopes: Map<string, CelCheckType>[] = [];

  constructor(variables: ReadonlyMap<string, CelCheckType>, conditionNames: ReadonlySet<string>) {
    this.#variables = variables;
    this.#conditionNames = conditionNames;
  }

  check(expr: CelExpr): CelCheckType {
    const kind = expr.exprKind;
    switch (kind.case) {
      case 'constExpr':
        return this.#constant(kind.value.constantKind.case);
      case 'identExpr':
        return this.#identifier(expr.id, kind.value.name);
      case 'selectExpr':
        return this.#select(expr, kind.value.operand, kind.value.field, kind.value.testOnly);
      case 'callExpr':
        return this.#call(expr.id, kind.value.function, kind.value.target, kind.value.args);
      case 'listExpr': {
        let element: CelCheckType | undefined;
        for (const item of kind.value.elements) {
          const type = this.check(item);
          element = element === undefined ? type : joinTypes(element, type);
        }
        return listOf(element ?? DYN);
      }
      case 'structExpr': {
        if (kind.value.messageName !== '') return this.#problem(expr.id, 'a map literal (message types are not available in policies)', `a ${kind.value.messageName} message`);

        let key: CelCheckType | undefined;
        let value: CelCheckType | undefined;
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === 'mapKey') {
            const type = this.check(entry.keyKind.value);
            key = key === undefined ? type : joinTypes(key, type);
          }
          if (entry.value !== undefined) {
            const type = this.check(entry.value);
            value = value === undefined ? type : joinTypes(value, type);
          }
        }
        return mapOf(key ?? DYN, value ?? DYN);
      }
      case 'comprehensionExpr':
        return this.#comprehension(kind.value);
      default:
        return this.#problem(expr.id, 'a CEL expression', 'an empty expression');
    }
  }

  #problem(exprId: bigint, expected: string, got: string): CelCheckType {
    this.problems.push({ exprId, expected, got });
    return DYN;
  }

  #constant(kind: string | undefined): CelCheckType {
    switch (kind) {
      case 'boolValue': return BOOL;
      case 'int64Value': return INT;
      case 'uint64Value': return UINT;
      case 'doubleValue': return DOUBLE;
      case 'stringValue': return STRING;
      case 'bytesValue': return BYTES;
      case 'nullValue': return NULL;
      default: return DYN;
    }
  }

  #identifier(exprId: bigint, name: string): CelCheckType {
    for (let i = this.#scopes.length - 1; i >= 0; i--) {
      const type = this.#scopes[i]!.get(name);
      if (type !== undefined) return type;
    }

    const type = this.#variables.get(name);
    if (type !== undefined) return type;

    if (name === CONDITIONS_VARIABLE) return this.#problem(exprId, `a named condition as ${CONDITIONS_VARIABLE}.<name>`, `"${CONDITIONS_VARIABLE}" on its own`);

    const names = [...this.#variables.keys(), CONDITIONS_VARIABLE];
    return this.#problem(exprId, `a declared variable (${names.join(', ')})${didYouMean(name, names)}`, `undeclared reference "${name}"`);
  }

  #select(expr: CelExpr, operand: CelExpr | undefined, field: string, testOnly: boolean): CelCheckType {
    if (operand === undefined) return this.#problem(expr.id, 'a field selection', 'no operand');

    if (operand.exprKind.case === 'identExpr' && operand.exprKind.value.name === CONDITIONS_VARIABLE && !this.#isLocal(CONDITIONS_VARIABLE)) {
      if (!this.#conditionNames.has(field)) {
        const names = [...this.#conditionNames];
        const known = names.length === 0 ? 'no conditions are defined' : `defined: ${names.join(', ')}`;
        return this.#problem(expr.id, `a condition from the conditions section (${known})${didYouMean(field, names)}`, `conditions.${field}`);
      }
      if (testOnly) return this.#problem(expr.id, 'has() on a variable field', `has(conditions.${field})`);
      this.conditionRefs.add(field);
      return BOOL;
    }

    const type = this.check(operand);
    let fieldType: CelCheckType;
    if (type.kind === 'record') {
      const known = type.fields.get(field);
      if (known === undefined) {
        return this.#problem(expr.id, `a field of ${type.name} (${[...type.fields.keys()].join(', ')})${didYouMean(field, type.fields.keys())}`, `"${field}"`);
      }
      fieldType = known;
    } else if (type.kind === 'map') {
      if (type.key.kind !== 'string' && type.key.kind !== 'dyn') return this.#problem(expr.id, 'field selection on a map with string keys', typeName(type));
      fieldType = type.value;
    } else if (type.kind === 'dyn') {
      fieldType = DYN;
    } else {
      return this.#problem(expr.id, `a map or variable before ".${field}"`, typeName(type));
    }

    return testOnly ? BOOL : fieldType;
  }

  #isLocal(name: string): boolean {
    return this.#scopes.some((scope) => scope.has(name));
  }

  #call(exprId: bigint, name: string, target: CelExpr | undefined, args: readonly CelExpr[]): CelCheckType {
    const receiver = target === undefined ? undefined : this.check(target);
    const types = args.map((arg) => this.check(arg));
    const signature = `(${[...(receiver ? [receiver] : []), ...types].map(typeName).join(', ')})`;
    const mismatch = (expected: string): CelCheckType => this.#problem(exprId, `${displayName(name)} ${expected}`, `arguments ${signature}`);
    const [a, b, c] = types;

    if (name === '_&&_' || name === '_||_') {
      return types.every((type) => type.kind === 'bool' || type.kind === 'dyn') ? BOOL : mismatch('on bool operands');
    }
    // The `all` macro expands to a loop whose condition calls this internal function.
    if (name === '@not_strictly_false') return BOOL;
    if (name === '!_') return a!.kind === 'bool' || a!.kind === 'dyn' ? BOOL : mismatch('on a bool operand');
    if (name === '-_') {
      if (a!.kind === 'int' || a!.kind === 'double' || a!.kind === 'dyn') return a!;
      return mismatch('on an int or double operand');
    }
    if (name === '_?_:_') {
      if (a!.kind !== 'bool' && a!.kind !== 'dyn') return mismatch('with a bool condition');
      return joinTypes(b!, c!);
    }
    if (name === '_==_' || name === '_!=_') return isComparable(a!, b!) ? BOOL : mismatch('on operands of comparable types');
    if (COMPARISONS.has(name)) return isOrdered(a!, b!) ? BOOL : mismatch('on two numbers, two strings, two bytes or two bools');
    if (ARITHMETIC.has(name)) return this.#arithmetic(name, a!, b!, mismatch);
    if (name === '@in') {
      if (b!.kind === 'list') return isComparable(a!, b.element) ? BOOL : mismatch('on a value and a list of that type');
      if (b!.kind === 'map') return isComparable(a!, b.key) ? BOOL : mismatch('on a key and a map with that key type');
      if (b!.kind === 'record') return a!.kind === 'string' || a!.kind === 'dyn' ? BOOL : mismatch('on a string and a variable');
      return b!.kind === 'dyn' ? BOOL : mismatch('on a value and a list or map');
    }
    if (name === '_[_]') {
      if (a!.kind === 'list') return b!.kind === 'int' || b!.kind === 'uint' || b!.kind === 'dyn' ? a.element : mismatch('on a list and an int index');
      if (a!.kind === 'map') return isComparable(a.key, b!) ? a.value : mismatch('on a map and a key of its key type');
      if (a!.kind === 'record') return b!.kind === 'string' || b!.kind === 'dyn' ? DYN : mismatch('on a variable and a string key');
      return a!.kind === 'dyn' ? DYN : mismatch('on a list or map');
    }
    if (name === 'size') {
      const operand = receiver ?? a;
      if (operand === undefined || types.length + (receiver ? 1 : 0) !== 1) return mismatch('with one argument');
      return ['string', 'bytes', 'list', 'map', 'dyn'].includes(operand.kind) ? INT : mismatch('on a string, bytes, list or map');
    }
    if (STRING_METHODS.has(name)) {
      if (receiver === undefined) return mismatch(`as a method, such as request.path.${name}("...")`);
      const stringLike = (type: CelCheckType | undefined): boolean => type?.kind === 'string' || type?.kind === 'dyn';
      const argument = args[0]?.exprKind;
      if (name === 'matches' && argument?.case === 'constExpr' && argument.value.constantKind.case === 'stringValue') {
        this.patterns.push({ exprId: args[0]!.id, pattern: argument.value.constantKind.value });
      }
      return types.length === 1 && stringLike(receiver) && stringLike(a) ? BOOL : mismatch('on a string with one string argument');
    }
    const conversion = CONVERSIONS.get(name);
    if (conversion !== undefined && receiver === undefined) return types.length === 1 ? conversion : mismatch('with one argument');

    return this.#problem(exprId, `a function available in policies (${KNOWN_FUNCTIONS.join(', ')})${didYouMean(name, KNOWN_FUNCTIONS)}`, `undeclared function "${name}"`);
  }

  #arithmetic(name: string, a: CelCheckType, b: CelCheckType, mismatch: (expected: string) => CelCheckType): CelCheckType {
    if (a.kind === 'dyn' || b.kind === 'dyn') return a.kind === 'dyn' ? b : a;
    if (name === '_+_' && a.kind === 'string' && b.kind === 'string') return STRING;
    if (name === '_+_' && a.kind === 'bytes' && b.kind === 'bytes') return BYTES;
    if (name === '_+_' && a.kind === 'list' && b.kind === 'list') return listOf(joinTypes(a.element, b.element));
    if (name === '_%_') return (a.kind === 'int' || a.kind === 'uint') && a.kind === b.kind ? a : mismatch('on two ints or two uints');
    if (isNumeric(a) && a.kind === b.kind) return a;

    return mismatch('on operands of the same numeric type (CEL does not mix int and double; write 1.0 for a double)');
  }

  #comprehension(value: Extract<CelExpr['exprKind'], { case: 'comprehensionExpr' }>['value']): CelCheckType {
    const range = value.iterRange === undefined ? DYN : this.check(value.iterRange);
    let iterType: CelCheckType;
    if (range.kind === 'list') iterType = range.element;
    else if (range.kind === 'map') iterType = range.key;
    else if (range.kind === 'record') iterType = STRING;
    else if (range.kind === 'dyn') iterType = DYN;
    else return this.#problem(value.iterRange!.id, 'a list or map to iterate over', typeName(range));

    const accuType = value.accuInit === undefined ? DYN : this.check(value.accuInit);
    const scope = new Map<string, CelCheckType>([[value.iterVar, iterType], [value.accuVar, accuType]]);
    if (value.iterVar2 !== '') scope.set(value.iterVar2, range.kind === 'map' ? range.value : DYN);

    this.#scopes.push(scope);
    if (value.loopCondition !== undefined) this.check(value.loopCondition);
    const stepType = value.loopStep === undefined ? DYN : this.check(value.loopStep);
    scope.set(value.accuVar, joinTypes(accuType, stepType));
    const result = value.result === undefined ? DYN : this.check(value.result);
    this.#scopes.pop();

    return result;
  }
}

function isOrdered(a: CelCheckType, b: CelCheckType): boolean {
  if (a.kind === 'dyn' || b.kind === 'dyn') return true;
  if (isNumeric(a) && isNumeric(b)) return true;

  return a.kind === b.kind && (a.kind === 'string' || a.kind === 'bytes' || a.kind === 'bool');
}

/** Turns an operator's internal name (`_>=_`) into what the author wrote (`>=`). */
function displayName(name: string): string {
  if (name === '@in') return 'operator "in"';
  if (name === '_[_]') return 'index operator "[]"';
  if (name === '_?_:_') return 'conditional operator "?:"';
  if (name.startsWith('_') || name.endsWith('_')) return `operator "${name.replaceAll('_', '')}"`;

  return `function "${name}"`;
}
