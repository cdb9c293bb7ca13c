import type { CompiledCondition } from '../cel/compile-conditions.ts';
import type { LocalTime, LocalTimeClock } from '../cel/local-time.ts';
import type { Action, BreakGlassOffer, DecisionContext, StepUpRequirement } from '../decision.ts';
import type { RuleDefinition } from '../definition.ts';
import { CidrSet, parseAddress } from './cidr.ts';
import { anyOf, compileDeviceGlob, compilePathGlob, type GlobMatcher } from './path-glob.ts';
import { compileTimeWindow } from './time-window.ts';

/** A `match:` key, as {@link firstMismatch} names the one a request failed. */
export type MatchField =
  | 'authenticated' | 'routes' | 'methods' | 'sensitivity' | 'hosts' | 'auth_methods'
  | 'tls_groups' | 'groups' | 'paths' | 'devices' | 'networks' | 'time';

/** A rule with its match lists turned into sets, glob matchers and CIDR blocks, and its `when` compiled. */
export interface CompiledRule {
  readonly id: string;
  readonly action: Action;
  readonly stepUp: StepUpRequirement | undefined;
  readonly breakGlass: BreakGlassOffer | undefined;
  readonly authenticated: boolean | undefined;
  readonly routes: ReadonlySet<string> | undefined;
  readonly hosts: ReadonlySet<string> | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly groups: ReadonlySet<string> | undefined;
  readonly sensitivity: ReadonlySet<string> | undefined;
  readonly authMethods: ReadonlySet<string> | undefined;
  readonly tlsGroups: ReadonlySet<string> | undefined;
  readonly paths: GlobMatcher | undefined;
  readonly devices: GlobMatcher | undefined;
  readonly networks: CidrSet | undefined;
  readonly time: ((weekday: number, minute: number) => boolean) | undefined;
  readonly condition: CompiledCondition | undefined;
  /** Reason recorded when the rule decides a request. */
  readonly matchedReason: string;
  /** `[matchedReason]`, frozen and shared by every decision that has no other reasons. */
  readonly matchedReasons: readonly string[];
}

/**
 * Facts about one request that several rules need, each computed once and only when a
 * rule needs it.
 */
export class RequestFacts {
  readonly context: DecisionContext;
  /** Request host, lowercased, without port. */
  readonly host: string;
  readonly #clock: LocalTimeClock;
  #address: Uint32Array | undefined | null = null;
  #local: LocalTime | undefined | null = null;

  constructor(context: DecisionContext, clock: LocalTimeClock) {
    this.context = context;
    this.host = hostWithoutPort(context.request.host);
    this.#clock = clock;
  }

  /** The client address as four 32-bit words, or `undefined` when it does not parse. */
  get address(): Uint32Array | undefined {
    if (this.#address === null) this.#address = parseAddress(this.context.request.ip);
    return this.#address;
  }

  /** Local weekday, hour and minute, or `undefined` when the request time is not a finite number. */
  get local(): LocalTime | undefined {
    if (this.#local === null) this.#local = Number.isFinite(this.context.time) ? this.#clock.localTime(this.context.time) : undefined;
    return this.#local;
  }
}

export function compileRule(rule: RuleDefinition, condition: CompiledCondition | undefined): CompiledRule {
  const match = rule.match;
  const reasonText = rule.reason ?? rule.description ?? 'no reason given';
  const when = rule.when === undefined ? '' : ` (when ${rule.when.expression})`;
  const stepUp = rule.stepUp === undefined ? '' : `; step-up to acr ${rule.stepUp.acr_values} with max_age ${rule.stepUp.max_age}, valid for ${rule.stepUp.ttl} s`;
  const breakGlass = rule.breakGlass === undefined ? '' : `; break-glass for ${rule.breakGlass.ttl} s with reason codes ${rule.breakGlass.reason_codes.join(', ')}`;
  // A clause added after the reason replaces the reason's own full stop: "... factor; step-up to ...".
  const reasonBody = stepUp === '' && breakGlass === '' ? reasonText : reasonText.replace(/\.$/, '');
  const matchedReason = `rule ${rule.id} matched${when}: ${reasonBody}${stepUp}${breakGlass}`;
  const paths = match.paths === undefined ? undefined : anyOf(match.paths.map(compilePathGlob));
  const devices = match.devices === undefined ? undefined : anyOf(match.devices.map(compileDeviceGlob));

  return Object.freeze({
    id: rule.id,
    action: rule.action,
    stepUp: rule.stepUp,
    breakGlass: rule.breakGlass,
    authenticated: match.authenticated,
    routes: setOf(match.routes),
    hosts: setOf(match.hosts),
    methods: setOf(match.methods),
    groups: setOf(match.groups),
    sensitivity: setOf(match.sensitivity),
    authMethods: setOf(match.authMethods),
    tlsGroups: setOf(match.tlsGroups),
    paths,
    devices,
    networks: match.networks === undefined ? undefined : new CidrSet(match.networks),
    time: match.time === undefined ? undefined : compileTimeWindow(match.time),
    condition,
    matchedReason,
    matchedReasons: Object.freeze([matchedReason]),
  });
}

/**
 * Checks the request against the rule's `match:` block and returns the first key it fails,
 * or `undefined` when every key holds. Cheap set lookups come first, globs,
 * CIDR and time checks last.
 */
export function firstMismatch(rule: CompiledRule, facts: RequestFacts): MatchField | undefined {
  const context = facts.context;
  const principal = context.principal;
  if (rule.authenticated !== undefined && rule.authenticated !== (principal !== null)) return 'authenticated';
  if (rule.routes !== undefined && !rule.routes.has(context.route.id)) return 'routes';
  if (rule.methods !== undefined && !rule.methods.has(context.request.method)) return 'methods';
  if (rule.sensitivity !== undefined && !rule.sensitivity.has(context.route.sensitivity)) return 'sensitivity';
  if (rule.hosts !== undefined && !rule.hosts.has(facts.host)) return 'hosts';
  if (rule.authMethods !== undefined && (principal === null || !rule.authMethods.has(principal.method))) return 'auth_methods';
  if (rule.tlsGroups !== undefined && !rule.tlsGroups.has(context.tls.group)) return 'tls_groups';
  if (rule.groups !== undefined && !hasAnyGroup(rule.groups, context)) return 'groups';
  if (rule.paths !== undefined && !rule.paths.matches(context.request.path)) return 'paths';
  if (rule.devices !== undefined && (principal?.device === undefined || !rule.devices.matches(principal.device))) return 'devices';
  if (rule.networks !== undefined && !rule.networks.has(facts.address)) return 'networks';
  if (rule.time !== undefined) {
    const local = facts.local;
    if (local === undefined || !rule.time(local.weekday, local.hour * 60 + local.minute)) return 'time';
  }

  return undefined;
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
