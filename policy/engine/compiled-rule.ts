import type { CompiledCondition } from '../cel/compile-conditions.ts';
import type { Action, DecisionContext, StepUpRequirement } from '../decision.ts';
import type { RuleDefinition } from '../definition.ts';
import { compilePathGlob } from './path-glob.ts';

/** A rule with its match lists turned into sets and regular expressions and its `when` compiled. */
export interface CompiledRule {
  readonly id: string;
  readonly action: Action;
  readonly stepUp: StepUpRequirement | undefined;
  readonly authenticated: boolean | undefined;
  readonly routes: ReadonlySet<string> | undefined;
  readonly hosts: ReadonlySet<string> | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly groups: ReadonlySet<string> | undefined;
  readonly sensitivity: ReadonlySet<string> | undefined;
  readonly paths: RegExp | undefined;
  readonly condition: CompiledCondition | undefined;
  /** Reason recorded when the rule decides a request. */
  readonly matchedReason: string;
  /** `[matchedReason]`, frozen and shared by every decision that has no other reasons. */
  readonly matchedReasons: readonly string[];
}

export function compileRule(rule: RuleDefinition, condition: CompiledCondition | undefined): CompiledRule {
  const match = rule.match;
  const reasonText = rule.reason ?? rule.description ?? 'no reason given';
  const when = rule.when === undefined ? '' : ` (when ${rule.when.expression})`;
  const stepUp = rule.stepUp === undefined ? '' : `; step-up to acr ${rule.stepUp.acr_values} with max_age ${rule.stepUp.max_age}, valid for ${rule.stepUp.ttl} s`;
  const matchedReason = `rule ${rule.id} matched${when}: ${reasonText}${stepUp}`;
  const paths = match.paths === undefined ? undefined : new RegExp(match.paths.map((glob) => `(?:${compilePathGlob(glob).source})`).join('|'), 'u');

  return Object.freeze({
    id: rule.id,
    action: rule.action,
    stepUp: rule.stepUp,
    authenticated: match.authenticated,
    routes: setOf(match.routes),
    hosts: setOf(match.hosts),
    methods: setOf(match.methods),
    groups: setOf(match.groups),
    sensitivity: setOf(match.sensitivity),
    paths,
    condition,
    matchedReason,
    matchedReasons: Object.freeze([matchedReason]),
  });
}

/** Checks the request against the rule's `match:` block. `host` is the request host, lowercased, without port. */
export function matchesRequest(rule: CompiledRule, context: DecisionContext, host: string): boolean {
  if (rule.authenticated !== undefined && rule.authenticated !== (context.principal !== null)) return false;
  if (rule.routes !== undefined && !rule.routes.has(context.route.id)) return false;
  if (rule.methods !== undefined && !rule.methods.has(context.request.method)) return false;
  if (rule.sensitivity !== undefined && !rule.sensitivity.has(context.route.sensitivity)) return false;
  if (rule.hosts !== undefined && !rule.hosts.has(host)) return false;
  if (rule.groups !== undefined && !hasAnyGroup(rule.groups, context)) return false;
  if (rule.paths !== undefined && !rule.paths.test(context.request.path)) return false;

  return true;
}

function hasAnyGroup(groups: ReadonlySet<string>, context: DecisionContext): boolean {
  const principal = context.principal;
  if (principal === null) return false;

  for (const group of principal.groups) {
    if (groups.has(group)) return true;
  }
  return false;
}

/** Lowercases a Host value and removes its port, keeping IPv6 literals in brackets. */
export function hostWithoutPort(host: string): string {
  const lower = host.toLowerCase();
  if (lower.startsWith('[')) {
    const end = lower.indexOf(']');
    return end === -1 ? lower : lower.slice(0, end + 1);
  }

  const colon = lower.indexOf(':');
  return colon === -1 ? lower : lower.slice(0, colon);
}

function setOf(values: readonly string[] | undefined): ReadonlySet<string> | undefined {
  return values === undefined ? undefined : new Set(values);
}
