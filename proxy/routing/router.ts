import { RoutingError } from './errors.ts';

export type FailMode = 'closed' | 'open';

/** One route of the configuration: which requests it takes and where they go. */
export interface RouteConfig {
  readonly id: string;
  /** Exact host name (lowercase, without port), or `*` for any host. */
  readonly host: string;
  /** Path prefix matched on a segment boundary: `/fhir` matches `/fhir` and `/fhir/Patient`, not `/fhirx`. */
  readonly path_prefix: string;
  /** Upstream origin (and optional base path) as an `http:` or `https:` URL. */
  readonly upstream: string;
  readonly sensitivity: 'low' | 'normal' | 'high';
  /** Behaviour when Redis, the scorer or the IdP is unavailable; each entry defaults to `closed`. */
  readonly fail_mode: { readonly redis: FailMode; readonly scorer: FailMode; readonly idp: FailMode };
  /** Requests pass without authentication (health checks, static assets). */
  readonly public?: boolean;
  /** OAuth scopes a bearer token must carry for this route; a token without them gets 403 `insufficient_scope`. */
  readonly required_scopes?: readonly string[];
  /** Only connections with a post-quantum key exchange group (such as X25519MLKEM768) may use the route. */
  readonly require_pq?: boolean;
}

/** Route lookup by host and normalized path. */
export interface Router {
  readonly routes: readonly RouteConfig[];
  /**
   * Returns the route for `host` (lowercase, without port) and a normalized `path`: among routes
   * whose host equals `host` the longest matching prefix wins, and only when none matches are
   * `*` routes considered. Returns `undefined` when no route matches.
   */
  match(host: string, path: string): RouteConfig | undefined;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const SENSITIVITIES = ['low', 'normal', 'high'];
const FAIL_MODES = ['closed', 'open'];

/**
 * Validates `routes` and builds a router over them. The returned routes are frozen copies with
 * defaults filled in (`fail_mode` entries default to `closed`) and prefixes without a trailing slash.
 *
 * @throws {RoutingError} `WG_ROUTING_INVALID_ROUTE` naming the field, such as `routes[1].upstream`.
 */
export function createRouter(routes: readonly RouteConfig[]): Router {
  if (!Array.isArray(routes)) {
    throw new RoutingError('WG_ROUTING_INVALID_ROUTE', 'routes', `Option routes is invalid: expected a list of routes, received ${typeof routes}.`);
  }

  const validated = routes.map((route, index) => validateRoute(route, `routes[${index}]`));

  const ids = new Set<string>();
  validated.forEach((route, index) => {
    if (ids.has(route.id)) invalid(`routes[${index}].id`, 'a unique route id', JSON.stringify(route.id), 'Give each route its own id');
    ids.add(route.id);
  });

  const byLongestPrefix = (candidates: RouteConfig[]): RouteConfig[] =>
    candidates.sort((a, b) => b.path_prefix.length - a.path_prefix.length);
  const exactHostRoutes = new Map<string, RouteConfig[]>();
  for (const route of validated.filter((candidate) => candidate.host !== '*')) {
    exactHostRoutes.set(route.host, [...(exactHostRoutes.get(route.host) ?? []), route]);
  }
  for (const [host, candidates] of exactHostRoutes) exactHostRoutes.set(host, byLongestPrefix(candidates));
  const anyHostRoutes = byLongestPrefix(validated.filter((route) => route.host === '*'));

  return Object.freeze({
    routes: Object.freeze(validated),
    match(host: string, path: string): RouteConfig | undefined {
      const exact = exactHostRoutes.get(host)?.find((route) => prefixMatches(route.path_prefix, path));
      return exact ?? anyHostRoutes.find((route) => prefixMatches(route.path_prefix, path));
    },
  });
}

function prefixMatches(prefix: string, path: string): boolean {
  return prefix === '/' || path === prefix || path.startsWith(`${prefix}/`);
}

function validateRoute(route: RouteConfig, at: string): RouteConfig {
  if (route === null || typeof route !== 'object') invalid(at, 'a route object', typeof route, 'Write the route as a mapping');

  if (typeof route.id !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(route.id)) {
    invalid(`${at}.id`, 'an id of 1 to 64 letters, digits, "_", "." or "-"', JSON.stringify(route.id), 'Rename the route');
  }

  if (typeof route.host !== 'string' || (route.host !== '*' && !HOST_NAME.test(route.host))) {
    invalid(`${at}.host`, 'a lowercase host name without port, or "*"', JSON.stringify(route.host), 'Write the host name in lowercase and drop the port');
  }

  const prefix = route.path_prefix;
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || /[?#%\\]|\/\/|\/\.\.?(\/|$)/.test(prefix)) {
    invalid(`${at}.path_prefix`, 'a normalized path starting with "/" (no "?", "#", "%", "\\", "//" or dot segments)', JSON.stringify(prefix), 'Write the prefix as the normalized path');
  }

  let upstream: URL | undefined;
  try {
    upstream = typeof route.upstream === 'string' ? new URL(route.upstream) : undefined;
  } catch {
    upstream = undefined;
  }
  if (upstream === undefined || (upstream.protocol !== 'http:' && upstream.protocol !== 'https:') || upstream.search !== '' || upstream.hash !== '' || upstream.username !== '' || upstream.password !== '') {
    invalid(`${at}.upstream`, 'an http: or https: URL without credentials, query or fragment', JSON.stringify(route.upstream), 'Use a URL such as "http://127.0.0.1:8080"');
  }

  if (!SENSITIVITIES.includes(route.sensitivity)) {
    invalid(`${at}.sensitivity`, 'one of low, normal, high', JSON.stringify(route.sensitivity), 'Set the sensitivity');
  }

  const failMode = route.fail_mode ?? {};
  if (typeof failMode !== 'object') invalid(`${at}.fail_mode`, 'a mapping with redis, scorer and idp', JSON.stringify(failMode), 'Write fail_mode as a mapping');
  for (const dependency of ['redis', 'scorer', 'idp'] as const) {
    const mode = failMode[dependency];
    if (mode !== undefined && !FAIL_MODES.includes(mode)) invalid(`${at}.fail_mode.${dependency}`, 'closed or open', JSON.stringify(mode), 'Set closed or open');
  }

  for (const flag of ['public', 'require_pq'] as const) {
    if (route[flag] !== undefined && typeof route[flag] !== 'boolean') invalid(`${at}.${flag}`, 'true or false', JSON.stringify(route[flag]), 'Set a boolean');
  }

  const scopes = route.required_scopes;
  if (scopes !== undefined && (!Array.isArray(scopes) || !scopes.every((scope) => typeof scope === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope)))) {
    invalid(`${at}.required_scopes`, 'a list of OAuth scope tokens (printable ASCII without spaces, quotes or backslashes)', JSON.stringify(scopes), 'List each scope as its own string');
  }

  return Object.freeze({
    ...route,
    ...(scopes === undefined ? {} : { required_scopes: Object.freeze([...scopes]) }),
    path_prefix: prefix.length > 1 ? prefix.replace(/\/+$/, '') : prefix,
    fail_mode: Object.freeze({
      redis: failMode.redis ?? 'closed',
      scorer: failMode.scorer ?? 'closed',
      idp: failMode.idp ?? 'closed',
    }),
  });
}

function invalid(option: string, expected: string, received: string, action: string): never {
  throw new RoutingError('WG_ROUTING_INVALID_ROUTE', option, `Option ${option} is invalid: expected ${expected}, received ${received}. ${action}.`);
}
