import { isMap, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';
import type { ConfigIssue } from './errors.ts';

/**
 * Walks a parsed YAML document and reads typed options from it, recording an issue with
 * `file:line:column` for every missing, mistyped or unknown option instead of stopping
 * at the first one.
 */
export class OptionReader {
  readonly issues: ConfigIssue[] = [];
  readonly #file: string;
  readonly #lines: LineCounter;

  constructor(file: string, lines: LineCounter) {
    this.#file = file;
    this.#lines = lines;
  }

  /** Records an issue at a node's position (or at the start of the file when there is none). */
  report(node: Node | null | undefined, option: string, message: string): void {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.#lines.linePos(offset);
    // The top level has no option name of its own.
    this.issues.push({ file: this.#file, line, column: col, option: option === '' ? '(file)' : option, message });
  }

  /** Returns the map at `node` as key → value node, reporting keys outside `allowed`. */
  map(node: Node | null | undefined, option: string, allowed: readonly string[]): Map<string, Node> | null {
    if (!isMap(node)) {
      this.report(node, option, `expected a mapping, got ${describe(node)}`);
      return null;
    }
    const entries = new Map<string, Node>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node;
      const key = isScalar(keyNode) ? String(keyNode.value) : '';
      const path = option ? `${option}.${key}` : key;
      if (!allowed.includes(key)) {
        const hint = closest(key, allowed);
        this.report(keyNode, path, `unknown option${hint ? `; did you mean "${hint}"?` : ''} (allowed: ${allowed.join(', ')})`);
        continue;
      }
      entries.set(key, pair.value as Node);
    }
    return entries;
  }

  list(node: Node | null | undefined, option: string): Node[] {
    if (!isSeq(node)) {
      this.report(node, option, `expected a list, got ${describe(node)}`);
      return [];
    }
    return node.items as Node[];
  }

  string(node: Node | undefined, option: string, fallback?: string): string {
    if (node === undefined) return this.#missing(option, fallback, '');
    if (isScalar(node) && typeof node.value === 'string' && node.value !== '') return node.value;
    this.report(node, option, `expected a non-empty string, got ${describe(node)}`);
    return fallback ?? '';
  }

  optionalString(node: Node | undefined, option: string): string | undefined {
    return node === undefined ? undefined : this.string(node, option);
  }

  integer(node: Node | undefined, option: string, min: number, max: number, fallback?: number): number {
    if (node === undefined) return this.#missing(option, fallback, min);
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    this.report(node, option, `expected an integer from ${min} to ${max}, got ${describe(node)}`);
    return fallback ?? min;
  }

  number(node: Node | undefined, option: string, min: number, max: number, fallback: number): number {
    if (node === undefined) return fallback;
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max) return value;
    this.report(node, option, `expected a number from ${min} to ${max}, got ${describe(node)}`);
    return fallback;
  }

  boolean(node: Node | undefined, option: string, fallback: boolean): boolean {
    if (node === undefined) return fallback;
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    this.report(node, option, `expected true or false, got ${describe(node)}`);
    return fallback;
  }

  oneOf<T extends string>(node: Node | undefined, option: string, choices: readonly T[], fallback: T): T {
    if (node === undefined) return fallback;
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
    this.report(node, option, `expected one of ${choices.join(', ')}, got ${describe(node)}`);
    return fallback;
  }

  #missing<T>(option: string, fallback: T | undefined, placeholder: T): T {
    if (fallback !== undefined) return fallback;
    this.issues.push({ file: this.#file, line: 1, column: 1, option, message: 'missing required option' });
    return placeholder;
  }
}

/** Describes a YAML node for an error message: its scalar value or its kind. */
export function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return JSON.stringify(node.value) ?? String(node.value);
  return 'an unsupported value';
}

/** Returns the allowed word nearest to `word` by edit distance, when it is close enough to be a typo. */
export function closest(word: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of allowed) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

export type { Document };
