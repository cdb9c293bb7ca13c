import { isAlias, isMap, isScalar, isSeq, type Node, type Pair, type YAMLMap } from 'yaml';

import type { PolicyIssue, PolicyIssueCode } from '../errors.ts';
import type { YamlSource } from './source.ts';
import { didYouMean } from './suggest.ts';

/**
 * Maximum number of alias dereferences in one file, a guard against alias bombs ("billion
 * laughs"). An alias counts each time the reader reaches it, so an alias inside an aliased
 * block counts once per use of that block.
 */
const MAX_ALIASES = 100;

/** A position in a source file; lines and columns start at 1. */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

/** One entry of a YAML mapping whose key is a known option. */
export interface MapEntry {
  readonly key: Node;
  readonly value: Node | null;
}

/**
 * Reads typed values out of a parsed YAML document and records every problem as a
 * {@link PolicyIssue} instead of stopping at the first. Readers return `undefined` for a
 * value they reported.
 */
export class NodeReader {
  readonly source: YamlSource;
  readonly issues: PolicyIssue[];
  /** Rule (or condition) id added to issues reported while it is set. */
  ruleId: string | undefined;
  #aliases = 0;

  constructor(source: YamlSource, issues: PolicyIssue[]) {
    this.source = source;
    this.issues = issues;
  }

  /** Returns the position where a node starts, or the start of the file for a missing node. */
  position(node: Node | null | undefined): SourcePosition {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.source.lineCounter.linePos(offset);

    return { line, column: col };
  }

  report(code: PolicyIssueCode, at: Node | SourcePosition | null | undefined, expected: string, got: string): undefined {
    const position = at !== null && at !== undefined && 'line' in at ? at : this.position(at);
    const issue: PolicyIssue = { code, file: this.source.file, line: position.line, column: position.column, expected, got };
    this.issues.push(this.ruleId === undefined ? issue : { ...issue, ruleId: this.ruleId });

    return undefined;
  }

  /** Follows an alias to the node its anchor names, counting dereferences against {@link MAX_ALIASES}. */
  resolve(node: Node | null | undefined): Node | null | undefined {
    if (!isAlias(node)) return node;

    this.#aliases++;
    if (this.#aliases > MAX_ALIASES) {
      if (this.#aliases === MAX_ALIASES + 1) this.report('WG_POLICY_ALIAS_LIMIT', node, `at most ${MAX_ALIASES} alias references`, 'more');
      return undefined;
    }

    const target = node.resolve(this.source.document);
    if (target === undefined) return this.report('WG_POLICY_YAML_SYNTAX', node, 'an alias to an anchor defined earlier', `*${node.source}`);
    if (isAlias(target)) return this.report('WG_POLICY_YAML_SYNTAX', node, 'an alias to a value', 'an alias to an alias');

    return target as Node;
  }

  /**
   * Returns the node an alias names without counting the dereference, or the node itself.
   * Use it only to look ahead, because the value must still be read by a counting method.
   */
  peek(node: Node | null | undefined): Node | null | undefined {
    if (!isAlias(node)) return node;

    const target = node.resolve(this.source.document);
    return isAlias(target) ? undefined : (target as Node | undefined);
  }

  /**
   * Reads a mapping whose keys must come from `allowed`. Unknown keys are reported with a
   * "did you mean" hint and left out, missing `required` keys are reported at the mapping.
   */
  map(raw: Node | null | undefined, label: string, allowed: readonly string[], required: readonly string[] = []): Map<string, MapEntry> | undefined {
    const node = this.resolve(raw);
    if (node === undefined) return undefined;
    if (!isMap(node)) return this.report('WG_POLICY_WRONG_TYPE', site(raw, node), `${label} as a mapping`, describeNode(node));

    const entries = new Map<string, MapEntry>();
    for (const pair of (node as YAMLMap<unknown, unknown>).items as Pair<Node, Node | null>[]) {
      const keyNode = pair.key;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== 'string') {
        this.report('WG_POLICY_WRONG_TYPE', keyNode, `a string key in ${label}`, describeNode(keyNode));
        continue;
      }
      if (!allowed.includes(key)) {
        this.report('WG_POLICY_UNKNOWN_KEY', keyNode, `one of the keys ${allowed.join(', ')} in ${label}${didYouMean(key, allowed)}`, `"${key}"`);
        continue;
      }
      entries.set(key, { key: keyNode, value: pair.value });
    }

    for (const key of required) {
      if (!entries.has(key)) this.report('WG_POLICY_MISSING_KEY', node, `the key "${key}" in ${label}`, 'no such key');
    }

    return entries;
  }

  /** Reads a mapping with free-form keys and returns its pairs, keys resolved to strings. */
  pairs(raw: Node | null | undefined, label: string): { key: Node; name: string; value: Node | null }[] | undefined {
    const node = this.resolve(raw);
    if (node === undefined) return undefined;
    if (!isMap(node)) return this.report('WG_POLICY_WRONG_TYPE', site(raw, node), `${label} as a mapping`, describeNode(node));

    const pairs: { key: Node; name: string; value: Node | null }[] = [];
    for (const pair of (node as YAMLMap<unknown, unknown>).items as Pair<Node, Node | null>[]) {
      const name = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof name === 'string') pairs.push({ key: pair.key, name, value: pair.value });
      else this.report('WG_POLICY_WRONG_TYPE', pair.key, `a string key in ${label}`, describeNode(pair.key));
    }

    return pairs;
  }

  /** Reads a list, or a single item standing for a list of one when `acceptSingle` is set. */
  list(raw: Node | null | undefined, label: string, acceptSingle: boolean): (Node | null)[] | undefined {
    const node = this.resolve(raw);
    if (node === undefined) return undefined;
    if (isSeq(node)) return node.items as (Node | null)[];
    if (acceptSingle && node !== null && isScalar(node)) return [node];

    return this.report('WG_POLICY_WRONG_TYPE', site(raw, node), `${label} as a list`, describeNode(node));
  }

  string(raw: Node | null | undefined, label: string): string | undefined {
    const node = this.resolve(raw);
    if (node === undefined) return undefined;
    if (!isScalar(node) || typeof node.value !== 'string') return this.report('WG_POLICY_WRONG_TYPE', site(raw, node), `${label} as a string`, describeNode(node));
    if (node.value.length === 0) return this.report('WG_POLICY_INVALID_VALUE', node, `${label} as a non-empty string`, 'an empty string');

    return node.value;
  }

  /**
   * Reads a list of non-empty strings; a single string counts as a list of one. Returns the
   * values with the node of each, where a problem with a value is reported.
   */
  stringList(raw: Node | null | undefined, label: string): { values: string[]; nodes: (Node | null)[] } | undefined {
    const items = this.list(raw, label, true);
    if (items === undefined) return undefined;
    if (items.length === 0) return this.report('WG_POLICY_INVALID_VALUE', raw, `${label} with at least one entry`, 'an empty list');

    const values: string[] = [];
    for (const item of items) {
      const value = this.string(item, `each entry of ${label}`);
      if (value !== undefined) values.push(value);
    }

    return values.length === items.length ? { values, nodes: items } : undefined;
  }

  integer(raw: Node | null | undefined, label: string, min: number, max: number): number | undefined {
    const node = this.resolve(raw);
    if (node === undefined) return undefined;
    if (!isScalar(node) || typeof node.value !== 'number' || !Number.isInteger(node.value)) {
      return this.report('WG_POLICY_WRONG_TYPE', site(raw, node), `${label} as an integer`, describeNode(node));
    }
    if (node.value < min || node.value > max) return this.report('WG_POLICY_INVALID_VALUE', node, `${label} from ${min} to ${max}`, String(node.value));

    return node.value;
  }

  number(raw: Node | null | undefined, label: string): number | undefined {
    const node = this.resolve(raw);
    if (node === undefined) return undefined;
    if (!isScalar(node) || typeof node.value !== 'number' || !Number.isFinite(node.value)) {
      return this.report('WG_POLICY_WRONG_TYPE', site(raw, node), `${label} as a finite number`, describeNode(node));
    }

    return node.value;
  }

  boolean(raw: Node | null | undefined, label: string): boolean | undefined {
    const node = this.resolve(raw);
    if (node === undefined) return undefined;
    if (!isScalar(node) || typeof node.value !== 'boolean') return this.report('WG_POLICY_WRONG_TYPE', site(raw, node), `${label} as true or false`, describeNode(node));

    return node.value;
  }
}

/** Returns where to report a problem with a value: at the alias that refers to it when there is one, so that the issue points into the rule. */
function site(raw: Node | null | undefined, resolved: Node | null | undefined): Node | null | undefined {
  return isAlias(raw) ? raw : (resolved ?? raw);
}

/** Describes a YAML value for the "got" part of an issue. */
export function describeNode(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing (null)';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (!isScalar(node)) return 'an unsupported YAML node';

  const value = node.value;
  if (value === null) return 'nothing (null)';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)}`;
  if (typeof value === 'number' || typeof value === 'bigint') return `the number ${String(value)}`;
  if (typeof value === 'boolean') return `the boolean ${String(value)}`;

  return `a value of YAML tag ${node.tag ?? 'unknown'}`;
}
