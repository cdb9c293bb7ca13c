import type { DecisionContext } from '../decision.ts';
import type { LocalTime } from './local-time.ts';
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
  ['request', record('request', { method: STRING, host: STRING, path: STRING, ip: STRING, query_params: listOf(STRING) })],
  ['risk', DOUBLE],
  ['features', mapOf(STRING, DOUBLE)],
  ['tls', record('tls', { protocol: STRING, group: STRING })],
  ['time', record('time', { hour: INT, minute: INT, weekday: INT, epoch_ms: INT })],
  ['session', record('session', { active: BOOL, age_s: INT })],
  ['device', record('device', { present: BOOL, id: STRING })],
  ['break_glass_active', BOOL],
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
  readonly request: { readonly method: string; readonly host: string; readonly path: string; readonly ip: string; readonly query_params: readonly string[] };
  readonly risk: number;
  readonly features: Readonly<Record<string, number>>;
  readonly tls: { readonly protocol: string; readonly group: string };
  readonly time: { readonly hour: bigint; readonly minute: bigint; readonly weekday: bigint; readonly epoch_ms: bigint };
  readonly session: { readonly active: boolean; readonly age_s: bigint };
  readonly device: { readonly present: boolean; readonly id: string };
  readonly break_glass_active: boolean;
}

const NO_SESSION: PolicyBindings['session'] = Object.freeze({ active: false, age_s: 0n });
const NO_DEVICE: PolicyBindings['device'] = Object.freeze({ present: false, id: '' });

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
 * Builds the CEL variables for one request from its context and its local time in the
 * policy's time zone. `session.active` is false (and `age_s` 0) without a browser session,
 * `device.present` false when no device identity is known.
 */
export function buildBindings(context: DecisionContext, local: LocalTime): PolicyBindings {
  const principal = context.principal;
  const device = principal?.device;

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
    request: { method: context.request.method, host: context.request.host, path: context.request.path, ip: context.request.ip, query_params: context.request.queryParams },
    risk: context.risk,
    features: context.features,
    tls: context.tls,
    time: { hour: BigInt(local.hour), minute: BigInt(local.minute), weekday: BigInt(local.weekday), epoch_ms: BigInt(Math.trunc(context.time)) },
    session: context.session === undefined ? NO_SESSION : { active: true, age_s: BigInt(Math.max(0, Math.trunc(context.session.age_s))) },
    device: device === undefined || device === '' ? NO_DEVICE : { present: true, id: device },
    break_glass_active: context.breakGlassActive === true,
  };
}
