/**
 * Keys the policy reader accepts, per YAML mapping. The JSON Schema in
 * `policy/schema/policy.schema.json` lists the same keys; a test compares the two so they
 * cannot drift apart.
 */
export const POLICY_KEYS = Object.freeze({
  top: ['version', 'time_zone', 'conditions', 'rules'],
  rule: ['id', 'description', 'match', 'when', 'action', 'reason', 'step_up', 'break_glass'],
  match: ['routes', 'hosts', 'paths', 'methods', 'groups', 'sensitivity', 'authenticated', 'auth_methods', 'devices', 'networks', 'tls_groups', 'time'],
  time: ['days', 'hours'],
  step_up: ['acr', 'max_age', 'ttl'],
  break_glass: ['ttl', 'reason_codes'],
} as const);

/** Keys of a policy test file (`*.tests.yaml`) and of its parts. */
export const POLICY_TEST_KEYS = Object.freeze({
  top: ['version', 'policy', 'time_zone', 'defaults', 'cases'],
  case: ['name', 'context', 'expect'],
  expect: ['action', 'rule'],
  context: ['principal', 'route', 'request', 'risk', 'features', 'tls', 'time', 'session', 'elevated_acr', 'break_glass_active'],
  principal: ['subject', 'groups', 'acr', 'amr', 'method', 'device', 'auth_time'],
  route: ['id', 'host', 'path_prefix', 'sensitivity'],
  request: ['method', 'host', 'path', 'ip', 'query_params'],
  tls: ['protocol', 'group'],
  session: ['age_s'],
} as const);

/** Weekday names accepted in `match.time.days`, in the order of `Date.getUTCDay()` (0 = Sunday). */
export const WEEKDAYS = Object.freeze(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const);

/** Authentication methods accepted in `match.auth_methods`. */
export const AUTH_METHODS = Object.freeze(['session', 'bearer', 'mtls'] as const);
