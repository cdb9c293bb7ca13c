import { isMap, isScalar, Scalar, type Node } from 'yaml';

import type { Action, BreakGlassOffer, StepUpRequirement } from '../decision.ts';
import type { CelSource, ConditionDefinition, PolicyDefinition, RuleDefinition, RuleMatchDefinition } from '../definition.ts';
import { parseCidr, type CidrBlock } from '../engine/cidr.ts';
import { parseHours, type TimeWindowSpec } from '../engine/time-window.ts';
import { AUTH_METHODS, POLICY_KEYS, WEEKDAYS } from './keys.ts';
import { NodeReader, type MapEntry, type SourcePosition } from './node-reader.ts';
import { didYouMean } from './suggest.ts';

const TOP_LEVEL_KEYS = POLICY_KEYS.top;
const RULE_KEYS = POLICY_KEYS.rule;
const MATCH_KEYS = POLICY_KEYS.match;
const STEP_UP_KEYS = POLICY_KEYS.step_up;
const BREAK_GLASS_KEYS = POLICY_KEYS.break_glass;
const ACTIONS: readonly Action[] = ['allow', 'notify', 'step_up', 'block', 'break_glass'];
/** Break-glass lifetime used when a rule's `break_glass` block leaves out `ttl`, in seconds. */
export const DEFAULT_BREAK_GLASS_TTL = 3600;
const REASON_CODE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const SENSITIVITIES = ['low', 'normal', 'high'] as const;

/** Step-up lifetime used when a rule's `step_up` block leaves out `ttl`, in seconds. */
export const DEFAULT_STEP_UP_TTL = 900;

const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
const CONDITION_ID = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const METHOD = /^[A-Z]{1,20}$/;
const ROUTE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Options for {@link readPolicyDefinition}. */
export interface ReadPolicyOptions {
  /** Route ids from the route configuration. When given, a rule naming another route is an error. */
  readonly routeIds?: readonly string[];
}

/**
 * Checks the structure of a parsed policy document and returns its definition. Every
 * problem is added to `reader.issues`; the result is only usable when none were added.
 */
export function readPolicyDefinition(reader: NodeReader, options: ReadPolicyOptions): PolicyDefinition | undefined {
  const contents = reader.source.document.contents as Node | null;
  if (contents === null || (isScalar(contents) && contents.value === null)) {
    return reader.report('WG_POLICY_MISSING_KEY', { line: 1, column: 1 }, 'a mapping with the keys version and rules', 'an empty document');
  }

  const top = reader.map(contents, 'the policy file', TOP_LEVEL_KEYS, ['version', 'rules']);
  if (top === undefined) return undefined;

  const versionEntry = top.get('version');
  if (versionEntry !== undefined) {
    const version = reader.integer(versionEntry.value, 'version', 1, Number.MAX_SAFE_INTEGER);
    if (version !== undefined && version !== 1) reader.report('WG_POLICY_INVALID_VALUE', versionEntry.value, 'version 1, the only policy format version this Wardgate reads', String(version));
  }

  const timeZoneEntry = top.get('time_zone');
  const timeZone = timeZoneEntry === undefined ? undefined : readTimeZone(reader, timeZoneEntry.value);
  const conditions = readConditions(reader, top.get('conditions'));
  const { rules, unusedWhens } = readRules(reader, top.get('rules'), options);

  return { version: 1, ...(timeZone !== undefined && { timeZone }), conditions, rules, unusedWhens };
}

function readTimeZone(reader: NodeReader, node: Node | null): string | undefined {
  const value = reader.string(node, 'time_zone');
  if (value === undefined) return undefined;

  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
  } catch {
    return reader.report('WG_POLICY_INVALID_VALUE', node, 'time_zone as an IANA time zone name such as "Europe/Berlin" or a UTC offset such as "+01:00"', `"${value}"`);
  }

  return value;
}

function readConditions(reader: NodeReader, entry: MapEntry | undefined): ConditionDefinition[] {
  if (entry === undefined || entry.value === null) return [];
  if (isScalar(entry.value) && entry.value.value === null) return [];

  const pairs = reader.pairs(entry.value, 'conditions');
  if (pairs === undefined) return [];

  const conditions: ConditionDefinition[] = [];
  for (const { key, name: id, value } of pairs) {
    if (!CONDITION_ID.test(id)) {
      reader.report('WG_POLICY_INVALID_VALUE', key, 'a condition name of letters, digits and underscores, not starting with a digit (at most 64 characters)', `"${id}"`);
      continue;
    }

    reader.ruleId = `conditions.${id}`;
    const cel = readCel(reader, value, `condition ${id}`);
    reader.ruleId = undefined;
    if (cel !== undefined) conditions.push({ id, cel });
  }

  return conditions;
}

function readRules(reader: NodeReader, entry: MapEntry | undefined, options: ReadPolicyOptions): Pick<PolicyDefinition, 'rules' | 'unusedWhens'> {
  const rules: RuleDefinition[] = [];
  const unusedWhens: { ruleId: string; cel: CelSource }[] = [];
  if (entry === undefined) return { rules, unusedWhens };

  const items = reader.list(entry.value, 'rules', false);
  if (items === undefined) return { rules, unusedWhens };

  const seen = new Map<string, SourcePosition>();
  items.forEach((item, index) => {
    reader.ruleId = peekRuleId(reader, item) ?? `#${index + 1}`;
    const issuesBefore = reader.issues.length;
    const { rule, id, when } = readRule(reader, item, index, options);

    const first = id === undefined ? undefined : seen.get(id);
    if (id !== undefined && first !== undefined) {
      reader.report('WG_POLICY_DUPLICATE_ID', reader.position(item), `a rule id not used before (first used at line ${first.line})`, `"${id}" again`);
    } else if (id !== undefined) {
      seen.set(id, reader.position(item));
    }

    if (rule !== undefined && reader.issues.length === issuesBefore) rules.push(rule);
    else if (when !== undefined) unusedWhens.push({ ruleId: reader.ruleId, cel: when });
  });
  reader.ruleId = undefined;

  return { rules, unusedWhens };
}

/** Returns a rule's id before validation, so that issues about its other keys can name it. */
function peekRuleId(reader: NodeReader, item: Node | null): string | undefined {
  const node = reader.peek(item);
  if (!isMap(node)) return undefined;

  const value = node.get('id');
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function readRule(reader: NodeReader, item: Node | null, index: number, options: ReadPolicyOptions): { rule?: RuleDefinition; id?: string; when?: CelSource } {
  const issuesBefore = reader.issues.length;
  const entries = reader.map(item, `rule #${index + 1}`, RULE_KEYS, ['id', 'action']);
  if (entries === undefined) return {};

  const idNode = entries.get('id')?.value;
  const id = idNode === undefined ? undefined : reader.string(idNode, 'id');
  if (id !== undefined && (!RULE_ID.test(id) || id === 'default')) {
    reader.report('WG_POLICY_INVALID_VALUE', idNode, 'a rule id of letters, digits, ".", "_", ":" or "-" (at most 100 characters, not "default")', `"${id}"`);
  }

  const description = optional(entries, 'description', (node) => reader.string(node, 'description'));
  const reason = optional(entries, 'reason', (node) => reader.string(node, 'reason'));
  const match = optional(entries, 'match', (node) => readMatch(reader, node, options)) ?? {};
  const when = optional(entries, 'when', (node) => readCel(reader, node, 'when'));
  const action = optional(entries, 'action', (node) => readAction(reader, node));
  const stepUp = optional(entries, 'step_up', (node) => readStepUp(reader, node));
  const breakGlass = optional(entries, 'break_glass', (node) => readBreakGlass(reader, node));

  if (action === 'step_up' && !entries.has('step_up')) {
    reader.report('WG_POLICY_MISSING_KEY', entries.get('action')!.value, 'a step_up block (acr, max_age, ttl) next to action: step_up', 'no step_up key');
  }
  if (action !== undefined && action !== 'step_up' && entries.has('step_up')) {
    reader.report('WG_POLICY_INVALID_VALUE', entries.get('step_up')!.key, 'a step_up block only in rules with action: step_up', `a step_up block in a rule with action: ${action}`);
  }
  if (action === 'break_glass' && !entries.has('break_glass')) {
    reader.report('WG_POLICY_MISSING_KEY', entries.get('action')!.value, 'a break_glass block (ttl, reason_codes) next to action: break_glass', 'no break_glass key');
  }
  if (action !== undefined && action !== 'break_glass' && entries.has('break_glass')) {
    reader.report('WG_POLICY_INVALID_VALUE', entries.get('break_glass')!.key, 'a break_glass block only in rules with action: break_glass', `a break_glass block in a rule with action: ${action}`);
  }

  const position = reader.position(item);
  if (reader.issues.length > issuesBefore || id === undefined || action === undefined) return { id, when };

  return { rule: { id, description, match, when, action, reason, stepUp, breakGlass, position }, id, when };
}

function optional<T>(entries: Map<string, MapEntry>, key: string, read: (node: Node | null) => T | undefined): T | undefined {
  const entry = entries.get(key);

  return entry === undefined ? undefined : read(entry.value);
}

function readAction(reader: NodeReader, node: Node | null): Action | undefined {
  const value = reader.string(node, 'action');
  if (value === undefined) return undefined;
  if (!(ACTIONS as readonly string[]).includes(value)) {
    return reader.report('WG_POLICY_INVALID_VALUE', node, `action allow, notify, step_up, block or break_glass${didYouMean(value, ACTIONS)}`, `"${value}"`);
  }

  return value as Action;
}

function readStepUp(reader: NodeReader, node: Node | null): StepUpRequirement | undefined {
  const entries = reader.map(node, 'step_up', STEP_UP_KEYS, ['acr']);
  if (entries === undefined) return undefined;

  const acr = optional(entries, 'acr', (value) => reader.string(value, 'step_up.acr'));
  const maxAge = optional(entries, 'max_age', (value) => reader.integer(value, 'step_up.max_age (seconds)', 0, 86_400 * 366)) ?? 0;
  const ttl = optional(entries, 'ttl', (value) => reader.integer(value, 'step_up.ttl (seconds)', 1, 86_400)) ?? DEFAULT_STEP_UP_TTL;
  if (acr === undefined) return undefined;

  return Object.freeze({ acr_values: acr, max_age: maxAge, ttl });
}

function readBreakGlass(reader: NodeReader, node: Node | null): BreakGlassOffer | undefined {
  const entries = reader.map(node, 'break_glass', BREAK_GLASS_KEYS, ['reason_codes']);
  if (entries === undefined) return undefined;

  const ttl = optional(entries, 'ttl', (value) => reader.integer(value, 'break_glass.ttl (seconds)', 60, 86_400)) ?? DEFAULT_BREAK_GLASS_TTL;
  const codesEntry = entries.get('reason_codes');
  const strings = codesEntry === undefined ? undefined : reader.stringList(codesEntry.value, 'break_glass.reason_codes');
  if (strings === undefined) return undefined;

  const { values: codes, nodes: items } = strings;
  let valid = true;
  codes.forEach((code, i) => {
    if (REASON_CODE.test(code)) return;
    valid = false;
    reader.report('WG_POLICY_INVALID_VALUE', items[i] ?? codesEntry!.value, 'a reason code of letters, digits, ".", "_", ":" or "-" (at most 64 characters)', `"${code}"`);
  });
  const duplicate = codes.find((code, i) => codes.indexOf(code) !== i);
  if (duplicate !== undefined) {
    valid = false;
    reader.report('WG_POLICY_INVALID_VALUE', codesEntry!.value, 'each reason code at most once', `"${duplicate}" twice`);
  }
  if (!valid) return undefined;

  return Object.freeze({ ttl, reason_codes: Object.freeze(codes) });
}

function readTime(reader: NodeReader, node: Node | null): TimeWindowSpec | undefined {
  const entries = reader.map(node, 'match.time', POLICY_KEYS.time, ['hours']);
  if (entries === undefined) return undefined;

  const days = readDays(reader, entries.get('days'));
  const hoursEntry = entries.get('hours');
  const strings = hoursEntry === undefined ? undefined : reader.stringList(hoursEntry.value, 'match.time.hours');
  if (strings === undefined) return undefined;

  const { values: ranges, nodes: items } = strings;
  const windows: { start: number; end: number }[] = [];
  ranges.forEach((range, i) => {
    const parsed = parseHours(range);
    if (typeof parsed === 'string') reader.report('WG_POLICY_INVALID_VALUE', items[i] ?? hoursEntry!.value, parsed, `"${range}"`);
    else windows.push(parsed);
  });
  if (windows.length !== ranges.length || days === undefined) return undefined;

  return Object.freeze({ days: Object.freeze(days), windows: Object.freeze(windows) });
}

/** Reads `match.time.days` as weekday numbers (0 = Sunday); all seven days when the key is absent. */
function readDays(reader: NodeReader, entry: MapEntry | undefined): number[] | undefined {
  if (entry === undefined) return [0, 1, 2, 3, 4, 5, 6];

  const strings = reader.stringList(entry.value, 'match.time.days');
  if (strings === undefined) return undefined;

  const { values: names, nodes: items } = strings;
  const days: number[] = [];
  names.forEach((name, i) => {
    const day = (WEEKDAYS as readonly string[]).indexOf(name.toLowerCase());
    if (day === -1) reader.report('WG_POLICY_INVALID_VALUE', items[i] ?? entry.value, `a weekday of ${WEEKDAYS.join(', ')}${didYouMean(name.toLowerCase(), WEEKDAYS)}`, `"${name}"`);
    else days.push(day);
  });

  return days.length === names.length ? days : undefined;
}

function readMatch(reader: NodeReader, node: Node | null, options: ReadPolicyOptions): RuleMatchDefinition | undefined {
  const entries = reader.map(node, 'match', MATCH_KEYS);
  if (entries === undefined) return undefined;

  const list = (key: string, label: string, valid: (value: string) => string | undefined): string[] | undefined => {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;

    const strings = reader.stringList(entry.value, `match.${key}`);
    if (strings === undefined) return undefined;

    const { values, nodes: items } = strings;
    const result: string[] = [];
    values.forEach((value, i) => {
      const problem = valid(value);
      if (problem === undefined) result.push(value);
      else reader.report('WG_POLICY_INVALID_VALUE', items[i] ?? entry.value, `${label}${problem}`, `"${value}"`);
    });

    return result;
  };

  const routeIds = options.routeIds;
  const routes = list('routes', 'a route id', (value) => {
    if (!ROUTE_ID.test(value)) return ' of letters, digits, ".", "_" or "-"';
    if (routeIds !== undefined && !routeIds.includes(value)) return ` from the route configuration (${routeIds.join(', ')})${didYouMean(value, routeIds)}`;
    return undefined;
  });
  const hosts = list('hosts', 'a lowercase host name without port or scheme', (value) => (HOST.test(value) ? undefined : ''));
  const paths = list('paths', 'a path glob starting with "/"', (value) => (value.startsWith('/') && !value.includes('?') ? undefined : ' (no query string)'));
  const methods = list('methods', 'an HTTP method in capitals, such as GET', (value) => (METHOD.test(value) ? undefined : ''));
  const groups = list('groups', 'a group name', () => undefined);
  const sensitivity = list('sensitivity', 'a sensitivity of low, normal or high', (value) => ((SENSITIVITIES as readonly string[]).includes(value) ? undefined : didYouMean(value, SENSITIVITIES)));
  const authenticatedEntry = entries.get('authenticated');
  const authenticated = authenticatedEntry === undefined ? undefined : reader.boolean(authenticatedEntry.value, 'match.authenticated');
  const authMethods = list('auth_methods', `an authentication method of ${AUTH_METHODS.join(', ')}`, (value) => ((AUTH_METHODS as readonly string[]).includes(value) ? undefined : didYouMean(value, AUTH_METHODS)));
  const devices = list('devices', 'a device identity pattern', () => undefined);
  const tlsGroups = list('tls_groups', 'a TLS group name such as X25519MLKEM768', (value) => (/^[A-Za-z0-9_-]{1,64}$/.test(value) ? undefined : ''));
  const networkBlocks: CidrBlock[] = [];
  const networks = list('networks', 'a CIDR block such as 10.0.0.0/8 or 2001:db8::/32', (value) => {
    const block = parseCidr(value);
    if (typeof block === 'string') return ` with ${block}`;
    networkBlocks.push(block);
    return undefined;
  });
  const timeEntry = entries.get('time');
  const time = timeEntry === undefined ? undefined : readTime(reader, timeEntry.value);

  return {
    ...(routes && { routes }),
    ...(hosts && { hosts }),
    ...(paths && { paths }),
    ...(methods && { methods }),
    ...(groups && { groups }),
    ...(sensitivity && { sensitivity: sensitivity as ('low' | 'normal' | 'high')[] }),
    ...(authenticated !== undefined && { authenticated }),
    ...(authMethods && { authMethods: authMethods as ('session' | 'bearer' | 'mtls')[] }),
    ...(devices && { devices }),
    ...(networks && { networks: networkBlocks }),
    ...(tlsGroups && { tlsGroups }),
    ...(time && { time }),
  };
}

/** Reads a CEL expression string and works out how its character offsets map to file positions. */
function readCel(reader: NodeReader, raw: Node | null, label: string): CelSource | undefined {
  const node = reader.resolve(raw);
  const expression = reader.string(node, `${label} (a CEL expression)`);
  if (expression === undefined || node === null || node === undefined) return undefined;

  const start = node.range?.[0] ?? 0;
  const scalarType = (node as Scalar).type;
  const contentStart = scalarType === Scalar.QUOTE_DOUBLE || scalarType === Scalar.QUOTE_SINGLE ? start + 1 : start;
  const verbatim = reader.source.text.slice(contentStart, contentStart + expression.length) === expression;
  const lineCounter = reader.source.lineCounter;

  // Escapes and line folding make offsets in the value differ from offsets in the file.
  // For such values, errors point at the start of the value instead of the exact character.
  const locate = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(verbatim ? contentStart + Math.min(offset, expression.length) : start);
    return { line, column: col };
  };

  return { expression, locate };
}
