import type { CompiledRule } from './compiled-rule.ts';

/** Rules grouped by the route they can apply to, each list in file order. */
export interface RouteIndex {
  /** Returns the rules that may apply to a request on `routeId`: those naming it in `match.routes` and those without `match.routes`. */
  candidates(routeId: string): readonly CompiledRule[];
}

/**
 * Builds the route index once per compiled policy, so that a request on one route never
 * looks at rules written for other routes. First match still wins, because every list
 * keeps the rules' order in the file.
 */
export function buildRouteIndex(rules: readonly CompiledRule[]): RouteIndex {
  const anyRoute = rules.filter((rule) => rule.routes === undefined);
  const byRoute = new Map<string, readonly CompiledRule[]>();
  const routeIds = new Set(rules.flatMap((rule) => (rule.routes === undefined ? [] : [...rule.routes])));
  for (const routeId of routeIds) {
    byRoute.set(routeId, rules.filter((rule) => rule.routes === undefined || rule.routes.has(routeId)));
  }

  return { candidates: (routeId) => byRoute.get(routeId) ?? anyRoute };
}
