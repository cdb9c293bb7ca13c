import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { isMap, isSeq, type Document, type LineCounter, type Node } from 'yaml';

import type { Action } from '../decision.ts';
import { PolicyError, PolicyValidationError, formatIssue, type PolicyIssue } from '../errors.ts';
import { loadPolicyFile, readAtMost } from '../load-file.ts';
import type { CompiledPolicy } from '../compile.ts';
import { POLICY_TEST_KEYS } from '../yaml/keys.ts';
import { DEFAULT_MAX_FILE_BYTES, parseYamlSource } from '../yaml/source.ts';
import { didYouMean } from '../yaml/suggest.ts';
import { describe, readContext, type ContextProblem } from './context-input.ts';

/** Suffix of policy test files. */
export const TEST_FILE_SUFFIX = '.tests.yaml';

const ACTIONS: readonly Action[] = ['allow', 'notify', 'step_up', 'block', 'break_glass'];
const MAX_ALIAS_COUNT = 100;

/** Outcome of one test case. */
export interface CaseResult {
  readonly file: string;
  readonly name: string;
  readonly line: number;
  readonly column: number;
  readonly passed: boolean;
  /** For a failed case: what was expected and what the policy decided. */
  readonly message?: string;
}

/** Outcome of one test file: its cases, or the problems that kept it from running. */
export interface TestFileResult {
  readonly file: string;
  readonly policy?: string;
  readonly cases: readonly CaseResult[];
  /** Problems in the test file or the policy it names, one formatted line each. */
  readonly errors: readonly string[];
}

/**
 * Finds the policy test files (`*.tests.yaml`) under each path: a directory is searched
 * recursively, a file is taken as it is. Returns them sorted, so runs are reproducible.
 */
export async function findTestFiles(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const info = await stat(path);
    if (!info.isDirectory()) {
      found.push(path);
      return;
    }
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) await walk(child);
      else if (entry.name.endsWith(TEST_FILE_SUFFIX)) found.push(child);
    }
  };
  for (const path of paths) await walk(path);

  return found.sort();
}

/**
 * Runs one policy test file: loads the policy it names (relative to the test file),
 * decides every case and compares action and rule id with the expectation.
 */
export async function runTestFile(file: string): Promise<TestFileResult> {
  const issues: PolicyIssue[] = [];
  let bytes: Uint8Array;
  try {
    bytes = await readAtMost(file, DEFAULT_MAX_FILE_BYTES + 1);
  } catch (error) {
    return { file, cases: [], errors: [failureLine(error)] };
  }
  const source = parseYamlSource(bytes, file, DEFAULT_MAX_FILE_BYTES, issues);
  if (source === undefined) return { file, cases: [], errors: issues.map(formatIssue) };

  const locate = (path: readonly (string | number)[], atKey = false) => positionOf(source.document, source.lineCounter, path, atKey);
  const errors: string[] = [];
  const problem = (path: readonly (string | number)[], expected: string, got: string) => {
    // A problem with a key itself ("got the key ...") points at the key, others at the value.
    const { line, column } = locate(path, got.startsWith('the key "'));
    errors.push(`${file}:${line}:${column}: ${expected}, got ${got}`);
  };

  let data: unknown;
  try {
    data = source.document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    return { file, cases: [], errors: [`${file}:1:1: at most ${MAX_ALIAS_COUNT} alias references, got ${(error as Error).message}`] };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    problem([], 'a policy test file as a mapping with the keys version, policy and cases', describe(data));
    return { file, cases: [], errors };
  }

  const top = data as Record<string, unknown>;
  for (const key of Object.keys(top)) {
    if (!(POLICY_TEST_KEYS.top as readonly string[]).includes(key)) problem([key], `one of the keys ${POLICY_TEST_KEYS.top.join(', ')}${didYouMean(key, POLICY_TEST_KEYS.top)}`, `the key "${key}"`);
  }
  if (top.version !== 1) problem(['version'], 'version 1', describe(top.version));
  if (typeof top.policy !== 'string' || top.policy === '') problem(['policy'], 'policy: the policy file to test, relative to this file', describe(top.policy));
  if (!Array.isArray(top.cases) || top.cases.length === 0) problem(['cases'], 'cases as a non-empty list', Array.isArray(top.cases) ? 'an empty list' : describe(top.cases));
  if (top.time_zone !== undefined && typeof top.time_zone !== 'string') problem(['time_zone'], 'time_zone as a string', describe(top.time_zone));
  if (top.defaults !== undefined && (typeof top.defaults !== 'object' || top.defaults === null || Array.isArray(top.defaults))) problem(['defaults'], 'defaults as a request context mapping', describe(top.defaults));
  if (errors.length > 0) return { file, cases: [], errors };

  const policyFile = resolve(dirname(file), top.policy as string);
  let policy: CompiledPolicy;
  try {
    policy = await loadPolicyFile(policyFile, typeof top.time_zone === 'string' ? { timeZone: top.time_zone } : {});
  } catch (error) {
    return { file, policy: policyFile, cases: [], errors: [failureLine(error)] };
  }

  const defaults = (top.defaults ?? {}) as Record<string, unknown>;
  const cases: CaseResult[] = [];
  (top.cases as unknown[]).forEach((item, index) => {
    const result = runCase(item, index, defaults, policy, problem);
    if (result !== undefined) {
      const { line, column } = locate(['cases', index]);
      cases.push({ file, line, column, ...result });
    }
  });

  return { file, policy: policyFile, cases, errors };
}

function runCase(
  item: unknown,
  index: number,
  defaults: Record<string, unknown>,
  policy: CompiledPolicy,
  problem: (path: readonly (string | number)[], expected: string, got: string) => void,
): { name: string; passed: boolean; message?: string } | undefined {
  const path = ['cases', index];
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return void problem(path, 'a test case as a mapping with name, context and expect', describe(item));

  const testCase = item as Record<string, unknown>;
  let valid = true;
  for (const key of Object.keys(testCase)) {
    if (!(POLICY_TEST_KEYS.case as readonly string[]).includes(key)) {
      valid = false;
      problem([...path, key], `one of the keys ${POLICY_TEST_KEYS.case.join(', ')}${didYouMean(key, POLICY_TEST_KEYS.case)}`, `the key "${key}"`);
    }
  }
  const name = typeof testCase.name === 'string' && testCase.name !== '' ? testCase.name : `case #${index + 1}`;
  const expect = testCase.expect as Record<string, unknown> | undefined;
  if (typeof expect !== 'object' || expect === null || Array.isArray(expect)) {
    problem([...path, 'expect'], 'expect as a mapping with action and, optionally, rule', describe(expect));
    return undefined;
  }
  for (const key of Object.keys(expect)) {
    if (!(POLICY_TEST_KEYS.expect as readonly string[]).includes(key)) {
      valid = false;
      problem([...path, 'expect', key], `one of the keys ${POLICY_TEST_KEYS.expect.join(', ')}${didYouMean(key, POLICY_TEST_KEYS.expect)}`, `the key "${key}"`);
    }
  }
  if (typeof expect.action !== 'string' || !(ACTIONS as readonly string[]).includes(expect.action)) {
    valid = false;
    problem([...path, 'expect', 'action'], `expect.action of ${ACTIONS.join(', ')}${typeof expect.action === 'string' ? didYouMean(expect.action, ACTIONS) : ''}`, describe(expect.action));
  }
  if (expect.rule !== undefined && (typeof expect.rule !== 'string' || (expect.rule !== 'default' && !policy.ruleIds.includes(expect.rule)))) {
    valid = false;
    problem([...path, 'expect', 'rule'], `expect.rule as a rule id of the policy or "default"${typeof expect.rule === 'string' ? didYouMean(expect.rule, policy.ruleIds) : ''}`, describe(expect.rule));
  }

  const contextProblems: ContextProblem[] = [];
  const context = readContext(mergeContext(defaults, testCase.context), [...path, 'context'], contextProblems);
  for (const p of contextProblems) problem(p.path, p.expected, p.got);
  if (!valid || context === undefined) return undefined;

  const decision = policy.decide(context);
  const passed = decision.action === expect.action && (expect.rule === undefined || decision.rule === expect.rule);
  if (passed) return { name, passed };

  const expected = `${String(expect.action)}${expect.rule === undefined ? '' : ` by rule ${String(expect.rule)}`}`;
  return { name, passed, message: `expected ${expected}, got ${decision.action} by rule ${decision.rule} (${decision.reasons.join('; ')})` };
}

/** Merges a case's context over the file's defaults, one level deep for principal, route, request and tls. */
function mergeContext(defaults: Record<string, unknown>, context: unknown): unknown {
  if (context === undefined) return defaults;
  if (typeof context !== 'object' || context === null || Array.isArray(context)) return context;

  const merged: Record<string, unknown> = { ...defaults, ...(context as Record<string, unknown>) };
  for (const key of ['principal', 'route', 'request', 'tls']) {
    const base = defaults[key];
    const own = (context as Record<string, unknown>)[key];
    if (isPlainObject(base) && isPlainObject(own)) merged[key] = { ...base, ...own };
  }
  return merged;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Finds the position of the deepest node that exists along `path`; with `atKey`, of the last key itself. */
function positionOf(document: Document.Parsed, lineCounter: LineCounter, path: readonly (string | number)[], atKey: boolean): { line: number; column: number } {
  let node = document.contents as Node | null;
  let offset = node?.range?.[0] ?? 0;
  for (const [index, part] of path.entries()) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => (item.key as { value?: unknown } | null)?.value === part);
      if (pair !== undefined) offset = (pair.key as Node).range?.[0] ?? offset;
      if (atKey && index === path.length - 1) break;
      next = pair?.value;
    } else if (isSeq(node) && typeof part === 'number') {
      next = node.items[part];
    }
    if (next === undefined || next === null) break;
    node = next as Node;
    offset = node.range?.[0] ?? offset;
  }
  const { line, col } = lineCounter.linePos(offset);

  return { line, column: col };
}

function failureLine(error: unknown): string {
  if (error instanceof PolicyValidationError) return error.issues.map(formatIssue).join('\n');
  if (error instanceof PolicyError) return `${error.message} [${error.code}]`;
  throw error;
}
