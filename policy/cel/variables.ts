import type { DecisionContext } from '../decision.ts';
import type { LocalTimeClock } from './local-time.ts';
import { BOOL, DOUBLE, INT, STRING, listOf, mapOf, record, type CelCheckType } from './types.ts';

/**
 * Variables a `when` expression may read, with their types. Field names follow the
 * policy file's snake_case. `principal.authenticated` is false for an anonymous request,
 * whose other principal fields are then empty strings and lists.
 */
export const POLICY_VARIABLES: ReadonlyMap<string, CelCheckType> = new Map([
  ['principal', record('principal', {
    authenticated: BOOL,
    subject: STRING,
    groups: listOf(STRING),
    acr: STRING,
    amr: listOf(STRING),
    method: STRING,
    device: STRING,
  })],
  ['route', record('route', { id: STRING, host: STRING, path_prefix: STRING, sensitivity: STRING })],
  ['request', record('request', { method: STRING, host: STRING, path: STRING, ip: STRING })],
  ['risk', DOUBLE],
  ['features', mapOf(STRING, DOUBLE)],
  ['tls', record('tls', { protocol: STRING, group: STRING })],
  ['time', record('time', { hour: INT, weekday: INT, epoch_ms: INT })],
]);

/** Name of the pseudo-variable through which a `when` expression refers to named conditions (`conditions.off_hours`). */
export const CONDITIONS_VARIABLE = 'conditions';

/** Values of {@link POLICY_VARIABLES} for one request, in the shapes `@bufbuild/cel` reads (ints as bigint). */
export interface PolicyBindings {
  readonly principal: {
    readonly authenticated: boolean;
    readonly subject: string;
    readonly groups: readonly string[];
    readonly acr: string;
    readonly amr: readonly string[];
    readonly method: string;
    readonly device: string;
  };
  readonly route: { readonly id: string; readonly host: string; readonly path_prefix: string; readonly sensitivity: string };
  readonly request: { readonly method: string; readonly host: string; readonly path: string; readonly ip: string };
  readonly risk: number;
  readonly features: Readonly<Record<string, number>>;
  readonly tls: { readonly protocol: string; readonly group: string };
  readonly time: { readonly hour: bigint; readonly weekday: bigint; readonly epoch_ms: bigint };
}

const ANONYMOUS: PolicyBindings['principal'] = Object.freeze({
  authenticated: false,
  subject: '',
  groups: Object.freeze([]),
  acr: '',
  amr: Object.freeze([]),
  method: '',
  device: '',
});

/**
 * Builds the CEL variables for one request. Throws a `RangeError` when `context.time`
 * is not a finite number, because no time variable can be computed from it.
 */
export function buildBindings(context: DecisionContext, clock: LocalTimeClock): PolicyBindings {
  const principal = context.principal;
  const local = clock.localTime(context.time);

  return {
    principal: principal === null
      ? ANONYMOUS
      : {
          authenticated: true,
          subject: principal.subject,
          groups: principal.groups,
          acr: principal.acr ?? '',
          amr: principal.amr ?? [],
          method: principal.method,
          device: principal.device ?? '',
        },
    route: { id: context.route.id, host: context.route.host, path_prefix: context.route.pathPrefix, sensitivity: context.route.sensitivity },
    request: context.request,
    risk: context.risk,
    features: context.features,
    tls: context.tls,
    time: { hour: BigInt(local.hour), weekday: BigInt(local.weekday), epoch_ms: BigInt(Math.trunc(context.time)) },
  };
}
