import type { CelExpr } from './types.ts';
import type { PolicyBindings } from './variables.ts';

/** A boolean condition compiled to a plain JavaScript closure. */
export type NativePredicate = (bindings: PolicyBindings) => boolean;

type Getter = (bindings: PolicyBindings) => unknown;
interface Operand {
  readonly get: Getter;
  readonly kind: 'number' | 'string' | 'bool' | 'string-list';
  readonly constant?: unknown;
}

const FIELD_KINDS: Readonly<Record<string, Readonly<Record<string, Operand['kind']>>>> = {
  principal: { authenticated: 'bool', subject: 'string', groups: 'string-list', acr: 'string', amr: 'string-list', method: 'string', device: 'string' },
  route: { id: 'string', host: 'string', path_prefix: 'string', sensitivity: 'string' },
  request: { method: 'string', host: 'string', path: 'string', ip: 'string', query_params: 'string-list' },
  tls: { protocol: 'string', group: 'string' },
  time: { hour: 'number', minute: 'number', weekday: 'number', epoch_ms: 'number' },
  session: { active: 'bool', age_s: 'number' },
  device: { present: 'bool', id: 'string' },
};

/**
 * Compiles a type-checked expression to a closure when it only uses comparisons of
 * context fields with constants, `in` on constant lists or on the list fields
 * (`principal.groups`, `principal.amr`, `request.query_params`), and `&&`, `||`, `!`.
 * Returns `undefined` for anything else, which then runs through `@bufbuild/cel`: a list
 * field in any other position, for example in `exists`, `size` or `==`.
 *
 * Within this subset no CEL runtime error is possible, because every field is always
 * bound, so JavaScript's operators give the same results as CEL's: numbers compare
 * across int (bigint) and double, `NaN` compares false, strings compare by code point.
 * The interpreter took 0.3 to 1.6 µs per evaluation of such conditions (Node 24, 2-core
 * AMD EPYC VM), which adds up over tens of rules per request.
 */
export function compileNative(expr: CelExpr): NativePredicate | undefined {
  return predicate(expr);
}

function predicate(expr: CelExpr): NativePredicate | undefined {
  const kind = expr.exprKind;
  if (kind.case === 'constExpr' && kind.value.constantKind.case === 'boolValue') {
    const value = kind.value.constantKind.value;
    return () => value;
  }
  if (kind.case === 'selectExpr') {
    const operand = value(expr);
    if (operand?.kind !== 'bool') return undefined;
    const get = operand.get;
    return (bindings) => get(bindings) === true;
  }
  if (kind.case !== 'callExpr' || kind.value.target !== undefined) return undefined;

  const [left, right] = kind.value.args;
  switch (kind.value.function) {
    case '_&&_': {
      const a = predicate(left!);
      const b = a && predicate(right!);
      return a && b ? (bindings) => a(bindings) && b(bindings) : undefined;
    }
    case '_||_': {
      const a = predicate(left!);
      const b = a && predicate(right!);
      return a && b ? (bindings) => a(bindings) || b(bindings) : undefined;
    }
    case '!_': {
      const a = predicate(left!);
      return a ? (bindings) => !a(bindings) : undefined;
    }
    case '@in':
      return membership(left!, right!);
    default:
      return comparison(kind.value.function, left!, right!);
  }
}

function comparison(operator: string, left: CelExpr, right: CelExpr): NativePredicate | undefined {
  const a = value(left);
  const b = value(right);
  if (a === undefined || b === undefined || a.kind !== b.kind) return undefined;
  if (a.kind !== 'number' && a.kind !== 'string') return undefined;

  const x = a.get;
  const y = b.get;
  // Loose equality compares a bigint with a number by value, as CEL does for int and double.
  switch (operator) {
    case '_<_': return (bindings) => (x(bindings) as number) < (y(bindings) as number);
    case '_<=_': return (bindings) => (x(bindings) as number) <= (y(bindings) as number);
    case '_>_': return (bindings) => (x(bindings) as number) > (y(bindings) as number);
    case '_>=_': return (bindings) => (x(bindings) as number) >= (y(bindings) as number);
    case '_==_': return (bindings) => x(bindings) == y(bindings);
    case '_!=_': return (bindings) => x(bindings) != y(bindings);
    default: return undefined;
  }
}

function membership(left: CelExpr, right: CelExpr): NativePredicate | undefined {
  const needle = value(left);
  if (needle === undefined) return undefined;

  if (right.exprKind.case === 'listExpr') {
    const constants: unknown[] = [];
    for (const element of right.exprKind.value.elements) {
      const item = value(element);
      if (item === undefined || !('constant' in item) || item.kind !== needle.kind) return undefined;
      constants.push(item.constant);
    }
    if (needle.kind === 'string') {
      const set = new Set(constants);
      const get = needle.get;
      return (bindings) => set.has(get(bindings));
    }
    return undefined;
  }

  const haystack = value(right);
  if (haystack?.kind !== 'string-list' || needle.kind !== 'string') return undefined;
  const getNeedle = needle.get;
  const getList = haystack.get;

  return (bindings) => (getList(bindings) as readonly string[]).includes(getNeedle(bindings) as string);
}

function value(expr: CelExpr): Operand | undefined {
  const kind = expr.exprKind;
  if (kind.case === 'constExpr') {
    const constant = kind.value.constantKind;
    if (constant.case === 'stringValue') return literal(constant.value, 'string');
    if (constant.case === 'doubleValue') return literal(constant.value, 'number');
    if (constant.case === 'int64Value') return literal(constant.value, 'number');
    return undefined;
  }
  if (kind.case === 'identExpr' && kind.value.name === 'risk') return { get: (bindings) => bindings.risk, kind: 'number' };
  if (kind.case !== 'selectExpr' || kind.value.testOnly) return undefined;

  const operand = kind.value.operand?.exprKind;
  if (operand?.case !== 'identExpr') return undefined;
  const variable = operand.value.name as keyof typeof FIELD_KINDS;
  const field = kind.value.field;
  const fieldKind = FIELD_KINDS[variable]?.[field];
  if (fieldKind === undefined) return undefined;

  const get = (bindings: PolicyBindings): unknown => (bindings[variable as 'route'] as unknown as Record<string, unknown>)[field];
  return { get, kind: fieldKind };
}

function literal(constant: unknown, kind: Operand['kind']): Operand {
  return { get: () => constant, kind, constant };
}
