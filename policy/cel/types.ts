import type { parse } from '@bufbuild/cel';

/** A parsed CEL expression node, as `@bufbuild/cel` returns it. */
export type CelExpr = ReturnType<typeof parse>['expr'];

/** Static type of a CEL expression in the policy checker. */
export type CelCheckType =
  | { readonly kind: 'int' | 'uint' | 'double' | 'string' | 'bool' | 'bytes' | 'null' | 'dyn' }
  | { readonly kind: 'list'; readonly element: CelCheckType }
  | { readonly kind: 'map'; readonly key: CelCheckType; readonly value: CelCheckType }
  /** A map with a fixed set of string keys, each with its own type. CEL has no such type, but the context variables have this shape. */
  | { readonly kind: 'record'; readonly name: string; readonly fields: ReadonlyMap<string, CelCheckType> };

export const INT: CelCheckType = { kind: 'int' };
export const UINT: CelCheckType = { kind: 'uint' };
export const DOUBLE: CelCheckType = { kind: 'double' };
export const STRING: CelCheckType = { kind: 'string' };
export const BOOL: CelCheckType = { kind: 'bool' };
export const BYTES: CelCheckType = { kind: 'bytes' };
export const NULL: CelCheckType = { kind: 'null' };
export const DYN: CelCheckType = { kind: 'dyn' };

export function listOf(element: CelCheckType): CelCheckType {
  return { kind: 'list', element };
}

export function mapOf(key: CelCheckType, value: CelCheckType): CelCheckType {
  return { kind: 'map', key, value };
}

export function record(name: string, fields: Record<string, CelCheckType>): CelCheckType {
  return { kind: 'record', name, fields: new Map(Object.entries(fields)) };
}

/** Formats a type the way CEL error messages do (`list(string)`, `map(string, double)`). */
export function typeName(type: CelCheckType): string {
  switch (type.kind) {
    case 'list':
      return `list(${typeName(type.element)})`;
    case 'map':
      return `map(${typeName(type.key)}, ${typeName(type.value)})`;
    case 'record':
      return type.name;
    case 'null':
      return 'null_type';
    default:
      return type.kind;
  }
}

export function isNumeric(type: CelCheckType): boolean {
  return type.kind === 'int' || type.kind === 'uint' || type.kind === 'double';
}

/** Returns whether values of the two types can be compared with `==`. CEL compares numbers across int, uint and double. */
export function isComparable(a: CelCheckType, b: CelCheckType): boolean {
  if (a.kind === 'dyn' || b.kind === 'dyn') return true;
  if (a.kind === 'null' || b.kind === 'null') return true;
  if (isNumeric(a) && isNumeric(b)) return true;
  if (a.kind === 'list' && b.kind === 'list') return isComparable(a.element, b.element);
  if ((a.kind === 'map' || a.kind === 'record') && (b.kind === 'map' || b.kind === 'record')) return true;

  return a.kind === b.kind;
}

/** Returns the single type that covers both, or `dyn` when they differ. */
export function joinTypes(a: CelCheckType, b: CelCheckType): CelCheckType {
  if (a.kind === 'dyn') return b;
  if (b.kind === 'dyn') return a;
  if (a.kind === 'list' && b.kind === 'list') return listOf(joinTypes(a.element, b.element));
  if (a.kind === b.kind && a.kind !== 'map' && a.kind !== 'record') return a;

  return typeName(a) === typeName(b) ? a : DYN;
}
