import { isIPv4, isIPv6 } from 'node:net';

import type { DecisionContext } from '../decision.ts';
import { MAX_QUERY_PARAMS, stripModifiers } from '../query-parameter-names.ts';
import { POLICY_TEST_KEYS } from '../yaml/keys.ts';
import { didYouMean } from '../yaml/suggest.ts';

/** A problem in a request context written by hand, at a path such as `["cases", 2, "context", "risk"]`. */
export interface ContextProblem {
  readonly path: readonly (string | number)[];
  readonly expected: string;
  readonly got: string;
}

type Path = readonly (string | number)[];

const METHODS = ['session', 'bearer', 'mtls'] as const;
const SENSITIVITIES = ['low', 'normal', 'high'] as const;

/**
 * Converts a request context written in YAML or JSON (snake_case keys, the names the CEL
 * variables use) into a {@link DecisionContext}. Every problem is added to `problems`
 * with its path; the result is only usable when none were added.
 *
 * Left-out parts get fixed defaults: an anonymous caller, route `default` with sensitivity
 * `normal`, `GET /` from 127.0.0.1, risk 0, TLS 1.3 with X25519MLKEM768. `time` (an ISO
 * 8601 date-time or milliseconds since the epoch) falls back to `defaultTime`, and is a
 * problem when that is undefined too.
 */
export function readContext(value: unknown, path: Path, problems: ContextProblem[], defaultTime?: number): DecisionContext | undefined {
  const before = problems.length;
  const report = (at: Path, expected: string, got: unknown): undefined => {
    problems.push({ path: at, expected, got: describe(got) });
    return undefined;
  };
  const object = readObject(value, path, POLICY_TEST_KEYS.context, report, 'a request context as a mapping');
  if (object === undefined) return undefined;

  const principalValue = object.principal;
  const principal = principalValue === undefined || principalValue === null ? null : readPrincipal(principalValue, [...path, 'principal'], report);
  const route = readObject(object.route ?? {}, [...path, 'route'], POLICY_TEST_KEYS.route, report, 'route as a mapping') ?? {};
  const request = readObject(object.request ?? {}, [...path, 'request'], POLICY_TEST_KEYS.request, report, 'request as a mapping') ?? {};
  const tls = readObject(object.tls ?? {}, [...path, 'tls'], POLICY_TEST_KEYS.tls, report, 'tls as a mapping') ?? {};
  const str = (at: Path, value: unknown, fallback: string) => {
    if (value === undefined) return fallback;
    if (typeof value === 'string' && value !== '') return value;
    return report(at, 'a non-empty string', value);
  };

  const routeId = str([...path, 'route', 'id'], route.id, 'default');
  const sensitivity = str([...path, 'route', 'sensitivity'], route.sensitivity, 'normal');
  if (sensitivity !== undefined && !(SENSITIVITIES as readonly string[]).includes(sensitivity)) report([...path, 'route', 'sensitivity'], `low, normal or high${didYouMean(sensitivity, SENSITIVITIES)}`, sensitivity);
  const requestHost = str([...path, 'request', 'host'], request.host, typeof route.host === 'string' ? route.host : 'localhost');
  const method = str([...path, 'request', 'method'], request.method, 'GET');
  const requestPath = str([...path, 'request', 'path'], request.path, '/');
  if (requestPath !== undefined && !requestPath.startsWith('/')) report([...path, 'request', 'path'], 'a path starting with "/"', requestPath);
  const ip = str([...path, 'request', 'ip'], request.ip, '127.0.0.1');
  if (ip !== undefined && !isIPv4(ip) && !isIPv6(ip)) report([...path, 'request', 'ip'], 'an IPv4 or IPv6 address', ip);
  const queryParams = readQueryParams(request.query_params, [...path, 'request', 'query_params'], report);

  let risk: number | undefined = 0;
  if (object.risk !== undefined) {
    const valid = typeof object.risk === 'number' && object.risk >= 0 && object.risk <= 1;
    risk = valid ? (object.risk as number) : report([...path, 'risk'], 'a number from 0 to 1', object.risk);
  }
  const features = readFeatures(object.features, [...path, 'features'], report);
  const time = readTime(object.time, [...path, 'time'], report, defaultTime);
  const session = object.session === undefined ? undefined : readSession(object.session, [...path, 'session'], report);
  const elevatedAcr = object.elevated_acr === undefined ? undefined : readStrings(object.elevated_acr, [...path, 'elevated_acr'], report);
  const breakGlass = object.break_glass_active;
  if (breakGlass !== undefined && typeof breakGlass !== 'boolean') report([...path, 'break_glass_active'], 'true or false', breakGlass);

  if (problems.length > before) return undefined;

  return {
    principal: principal ?? null,
    route: { id: routeId!, host: typeof route.host === 'string' ? route.host : requestHost!, pathPrefix: typeof route.path_prefix === 'string' ? route.path_prefix : '/', sensitivity: sensitivity as 'normal' },
    request: { method: method!, host: requestHost!, path: requestPath!, ip: ip!, queryParams: queryParams! },
    risk: risk!,
    features: features ?? {},
    tls: { protocol: typeof tls.protocol === 'string' ? tls.protocol : 'TLSv1.3', group: typeof tls.group === 'string' ? tls.group : 'X25519MLKEM768' },
    time: time!,
    ...(elevatedAcr !== undefined && { elevatedAcr }),
    ...(session !== undefined && { session }),
    ...(breakGlass === true && { breakGlassActive: true }),
  };
}

type Report = (at: Path, expected: string, got: unknown) => undefined;

function readObject(value: unknown, path: Path, keys: readonly string[], report: Report, label: string): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return report(path, label, value);

  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (!keys.includes(key)) report([...path, key], `one of the keys ${keys.join(', ')}${didYouMean(key, keys)}`, `the key "${key}"`);
  }
  return object;
}

function readPrincipal(value: unknown, path: Path, report: Report): DecisionContext['principal'] | undefined {
  const object = readObject(value, path, POLICY_TEST_KEYS.principal, report, 'principal as a mapping, or null for an anonymous request');
  if (object === undefined) return undefined;

  let subject: string | undefined = 'test-user';
  if (object.subject !== undefined) {
    subject = typeof object.subject === 'string' && object.subject !== '' ? object.subject : report([...path, 'subject'], 'a non-empty string', object.subject);
  }
  const groups = object.groups === undefined ? [] : readStrings(object.groups, [...path, 'groups'], report);
  const method = object.method === undefined ? 'session' : typeof object.method === 'string' && (METHODS as readonly string[]).includes(object.method) ? object.method : report([...path, 'method'], `session, bearer or mtls${didYouMean(String(object.method), METHODS)}`, object.method);
  const amr = object.amr === undefined ? undefined : readStrings(object.amr, [...path, 'amr'], report);
  const optionalString = (key: string) => {
    const value = object[key];
    if (value === undefined) return undefined;
    if (typeof value === 'string' && value !== '') return value;
    return report([...path, key], 'a non-empty string', value);
  };
  const acr = optionalString('acr');
  const device = optionalString('device');
  const authTime = object.auth_time;
  if (authTime !== undefined && !Number.isSafeInteger(authTime)) report([...path, 'auth_time'], 'an integer number of seconds since the epoch', authTime);
  if (subject === undefined || groups === undefined || method === undefined) return undefined;

  return {
    subject,
    groups,
    method: method as 'session',
    ...(acr !== undefined && { acr }),
    ...(amr !== undefined && { amr }),
    ...(device !== undefined && { device }),
    ...(typeof authTime === 'number' && { auth_time: authTime }),
  };
}

function readStrings(value: unknown, path: Path, report: Report): string[] | undefined {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((item) => typeof item !== 'string')) return report(path, 'a list of strings', value);
  return list as string[];
}

/**
 * Reads `request.query_params`: the parameter names as the proxy passes them, so each must be
 * a non-empty string without a FHIR modifier, given once, and there are at most
 * {@link MAX_QUERY_PARAMS}. Defaults to the empty list of a request without a query.
 */
function readQueryParams(value: unknown, path: Path, report: Report): string[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return report(path, 'request.query_params as a list of query parameter names such as [family, given]', value);
  if (value.length > MAX_QUERY_PARAMS) {
    return report([...path, MAX_QUERY_PARAMS], `at most ${MAX_QUERY_PARAMS} names in request.query_params, because the proxy drops the rest; remove this name and the ones after it`, value[MAX_QUERY_PARAMS]);
  }

  const seen = new Set<string>();
  value.forEach((name: unknown, index) => {
    const at = [...path, index];
    if (typeof name !== 'string' || name === '') {
      report(at, 'request.query_params entries as non-empty strings', name);
    } else if (name.includes(':')) {
      report(at, `request.query_params entries without FHIR modifiers, as the proxy passes them: write ${JSON.stringify(stripModifiers(name))}`, name);
    } else if (seen.has(name)) {
      report(at, 'each name once in request.query_params, because the proxy removes duplicates', name);
    }
    if (typeof name === 'string') seen.add(name);
  });

  return value as string[];
}

function readFeatures(value: unknown, path: Path, report: Report): Record<string, number> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return report(path, 'a mapping of feature names to numbers', value);

  for (const [name, number] of Object.entries(value)) {
    if (typeof number !== 'number' || !Number.isFinite(number)) report([...path, name], 'a finite number', number);
  }
  return value as Record<string, number>;
}

function readSession(value: unknown, path: Path, report: Report): { age_s: number } | undefined {
  const object = readObject(value, path, POLICY_TEST_KEYS.session, report, 'session as a mapping');
  if (object === undefined) return undefined;
  if (!Number.isSafeInteger(object.age_s) || (object.age_s as number) < 0) return report([...path, 'age_s'], 'a whole number of seconds, 0 or more', object.age_s);
  return { age_s: object.age_s as number };
}

function readTime(value: unknown, path: Path, report: Report, defaultTime: number | undefined): number | undefined {
  if (value === undefined) return defaultTime ?? report(path, 'a time as an ISO 8601 date-time such as 2025-01-06T10:00:00Z', value);
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (value instanceof Date && Number.isFinite(value.getTime())) return value.getTime();
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return ms;
  }
  return report(path, 'a time as an ISO 8601 date-time with a zone, such as 2025-01-06T10:00:00Z, or milliseconds since the epoch', value);
}

/** Describes a value for the "got" part of a problem. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return value.startsWith('the key "') ? value : JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/** Formats a path as `cases[2].context.risk`. */
export function formatPath(path: Path): string {
  return path.map((part, index) => {
    if (typeof part === 'number') return `[${part}]`;
    return index === 0 ? part : `.${part}`;
  }).join('');
}
