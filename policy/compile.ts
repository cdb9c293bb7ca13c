import { compileConditions } from './cel/compile-conditions.ts';
import { LocalTimeClock } from './cel/local-time.ts';
import { buildBindings, type PolicyBindings } from './cel/variables.ts';
import type { Decision, DecisionContext } from './decision.ts';
import { compileRule, firstMismatch, RequestFacts, type CompiledRule, type MatchField } from './engine/compiled-rule.ts';
import { describeMismatch } from './engine/describe-mismatch.ts';
import { buildRouteIndex, type RouteIndex } from './engine/route-index.ts';
import { PolicyError, PolicyValidationError, type PolicyIssue } from './errors.ts';
import { NodeReader } from './yaml/node-reader.ts';
import { readPolicyDefinition } from './yaml/read-policy.ts';
import { DEFAULT_MAX_FILE_BYTES, parseYamlSource } from './yaml/source.ts';

/** Options of {@link compilePolicy}. */
export interface CompilePolicyOptions {
  /**
   * IANA time zone or UTC offset in which `time.*` and `match.time` are computed when the
   * file sets no `time_zone`. Default `UTC`.
   */
  readonly timeZone?: string;
  /** Route ids from the route configuration; when given, `match.routes` may only name these. */
  readonly routeIds?: readonly string[];
  /** Maximum file size in bytes. Default 1 MiB. */
  readonly maxBytes?: number;
}

/** Outcome of one rule for one request, as {@link CompiledPolicy.explain} reports it. */
export interface RuleTrace {
  readonly rule: string;
  readonly outcome: 'matched' | 'no-match' | 'condition-false' | 'condition-error' | 'already-elevated';
  /** The `match:` key the request failed, for outcome `no-match`. */
  readonly field?: MatchField;
  readonly detail?: string;
}

/** A policy ready to decide requests. */
export interface CompiledPolicy {
  readonly file: string;
  /** SHA-256 of the file bytes, lowercase hex. */
  readonly hash: string;
  readonly ruleIds: readonly string[];
  readonly timeZone: string;
  /**
   * Decides one request: the first rule whose `match` and `when` hold decides, and with no
   * such rule the action is `block` by rule `default`. A `step_up` rule is passed over when
   * `context.elevatedAcr` contains its acr. Does not throw for a context of the declared
   * type: a `when` that fails to evaluate counts as not matched and adds a reason.
   */
  decide(context: DecisionContext): Decision;
  /** Decides like {@link decide} and also reports how every rule up to the deciding one fared. */
  explain(context: DecisionContext): { readonly decision: Decision; readonly trace: readonly RuleTrace[] };
}

const DEFAULT_REASON = 'no rule matched; the default is block';

/**
 * Validates and compiles a policy file. Throws {@link PolicyValidationError} listing every
 * problem in the file, or `WG_POLICY_INVALID_OPTION` for bad options.
 */
export function compilePolicy(source: string | Uint8Array, fileName: string, options: CompilePolicyOptions = {}): CompiledPolicy {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new PolicyError('WG_POLICY_INVALID_OPTION', `policy option maxBytes: expected a positive integer number of bytes, got ${String(maxBytes)}; fix the option`);
  }

  const issues: PolicyIssue[] = [];
  const yamlSource = parseYamlSource(source, fileName, maxBytes, issues);
  if (yamlSource === undefined) throw new PolicyValidationError(fileName, issues);

  const reader = new NodeReader(yamlSource, issues);
  const definition = readPolicyDefinition(reader, { routeIds: options.routeIds });
  const conditions = definition === undefined ? new Map() : compileConditions(reader, definition);
  if (definition === undefined || issues.length > 0) throw new PolicyValidationError(fileName, sortIssues(issues));

  const clock = new LocalTimeClock(definition.timeZone ?? options.timeZone ?? 'UTC');
  const rules = definition.rules.map((rule) => compileRule(rule, conditions.get(rule.id)));
  const index = buildRouteIndex(rules);

  return Object.freeze({
    file: fileName,
    hash: yamlSource.sha256,
    ruleIds: Object.freeze(rules.map((rule) => rule.id)),
    timeZone: clock.timeZone,
    decide: (context: DecisionContext) => evaluate(index.candidates(context.route.id), clock, context, undefined),
    explain: (context: DecisionContext) => {
      // Every rule is traced in file order; the route index only skips rules whose
      // `match.routes` fails, so the decision is the same as decide()'s.
      const trace: RuleTrace[] = [];
      const decision = evaluate(rules, clock, context, trace);
      return { decision, trace };
    },
  });
}

function evaluate(rules: readonly CompiledRule[], clock: LocalTimeClock, context: DecisionContext, trace: RuleTrace[] | undefined): Decision {
  const facts = new RequestFacts(context, clock);
  let bindings: PolicyBindings | string | undefined;
  let notes: string[] | undefined;

  for (const rule of rules) {
    const field: MatchField | undefined = firstMismatch(rule, facts);
    if (field !== undefined) {
      trace?.push({ rule: rule.id, outcome: 'no-match', field, detail: describeMismatch(rule, field, facts) });
      continue;
    }

    const condition = rule.condition;
    if (condition !== undefined) {
      bindings ??= bindingsFor(facts);
      const outcome = typeof bindings === 'string' ? bindings : condition.evaluate(bindings);
      if (typeof outcome === 'string') {
        const note = `rule ${rule.id} not applied: its when condition failed to evaluate (${outcome})`;
        (notes ??= []).push(note);
        trace?.push({ rule: rule.id, outcome: 'condition-error', detail: outcome });
        continue;
      }
      if (!outcome) {
        trace?.push({ rule: rule.id, outcome: 'condition-false', detail: condition.expression });
        continue;
      }
    }

    const stepUp = rule.stepUp;
    if (stepUp !== undefined && context.elevatedAcr?.includes(stepUp.acr_values) === true) {
      (notes ??= []).push(`rule ${rule.id} not applied: the session is already elevated to acr ${stepUp.acr_values}`);
      trace?.push({ rule: rule.id, outcome: 'already-elevated' });
      continue;
    }

    trace?.push({ rule: rule.id, outcome: 'matched' });
    const reasons = notes === undefined ? rule.matchedReasons : [...notes, rule.matchedReason];
    if (stepUp !== undefined) return { action: rule.action, rule: rule.id, reasons, risk: context.risk, stepUp };
    if (rule.breakGlass !== undefined) return { action: rule.action, rule: rule.id, reasons, risk: context.risk, breakGlass: rule.breakGlass };
    return { action: rule.action, rule: rule.id, reasons, risk: context.risk };
  }

  return { action: 'block', rule: 'default', reasons: notes === undefined ? DEFAULT_REASONS : [...notes, DEFAULT_REASON], risk: context.risk };
}

const DEFAULT_REASONS: readonly string[] = Object.freeze([DEFAULT_REASON]);

/** Builds the CEL variables, or returns why they cannot be built (a request time that is not finite). */
function bindingsFor(facts: RequestFacts): PolicyBindings | string {
  const local = facts.local;
  if (local === undefined) return `request time must be a finite number of milliseconds, got ${facts.context.time}`;

  try {
    return buildBindings(facts.context, local);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function sortIssues(issues: PolicyIssue[]): PolicyIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}
