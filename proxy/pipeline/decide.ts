import type { Logger } from 'pino';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import { queryParameterNames } from '../../policy/query-parameter-names.ts';
import { isScorerError, type ScorerError } from '../../scorer/errors.ts';
import { extractPatientIds } from '../../scorer/features/patient.ts';
import type { PatientPaths } from '../../scorer/features/patient-paths.ts';
import type { ScoreInput, ScoreResult } from '../../scorer/types.ts';
import type { Principal } from '../identity/principal.ts';
import type { Dependency, PolicyPort, ScorerPort } from '../ports.ts';
import type { RouteConfig } from '../routing/router.ts';
import { dependencyOfScorerError, failModeDecision } from './fail-modes.ts';

/** Hybrid post-quantum groups that satisfy a route's `require_pq`. */
export const POST_QUANTUM_GROUPS: ReadonlySet<string> = new Set(['X25519MLKEM768', 'SecP256r1MLKEM768', 'SecP384r1MLKEM1024']);

/** The scorer's result for one request, or the dependency whose failure left it without one. */
export interface ScoreOutcome {
  readonly result: ScoreResult | null;
  /** The scorer's input for `result`, present whenever `result` is. */
  readonly input?: ScoreInput;
  readonly failedDependency?: Dependency;
  /** The scorer's message when it rejected the request's own fields (`WG_SCORER_INVALID_INPUT`), a client error that no fail mode covers. */
  readonly invalidInput?: string;
}

/** HTTP error code of a request whose patient ids the scorer cannot parse. */
export const INVALID_PATIENT_ID_CODE = 'WG_HTTP_INVALID_PATIENT_ID';

/**
 * Returns the scorer's rejection of the patient ids in a normalized path and query (an
 * invalid id, more than 50 ids, an oversized target), or null when they parse. The live
 * proxy rejects such a request with 400 and `wardgate replay` skips it, before scoring.
 * `patientPaths` must be the templates the scorer was created with, so that both read the
 * same ids.
 */
export function invalidPatientIds(path: string, query: string, patientPaths: PatientPaths): ScorerError | null {
  try {
    extractPatientIds(query === '' ? path : `${path}?${query}`, patientPaths);
    return null;
  } catch (error) {
    if (isScorerError(error, 'WG_SCORER_INVALID_INPUT')) return error;
    throw error;
  }
}

/** Facts about one request that the decision core reads, whether live or replayed. */
export interface RequestFacts {
  readonly route: RouteConfig;
  readonly principal: Principal | null;
  readonly method: string;
  readonly host: string;
  /** Normalized path without the query string. */
  readonly path: string;
  /** Query string without the leading `?`; empty when absent. */
  readonly query: string;
  readonly ip: string;
  readonly userAgent: string;
  readonly tls: { readonly protocol: string; readonly group: string };
  readonly elevatedAcr: readonly string[];
  /** Request time in milliseconds since the epoch. */
  readonly time: number;
}

/**
 * Scores a request and decides it: the core shared by the live request handler and
 * `wardgate replay`, so that recorded traffic goes through the same fail modes, `require_pq`
 * check and policy as live traffic.
 */
export async function scoreAndDecide(
  scorer: ScorerPort,
  policy: PolicyPort,
  facts: RequestFacts,
  log: Pick<Logger, 'warn'>,
): Promise<{ decision: Decision; scored: ScoreOutcome; context?: DecisionContext }> {
  const scored = await scoreWithFailMode(scorer, facts, log);

  return { ...decideScored(policy, facts, scored), scored };
}

/** Builds the scorer's input from the request facts; null for anonymous callers, who are not scored. */
export function scoreInputOf(facts: RequestFacts): ScoreInput | null {
  if (!facts.principal) return null;

  return {
    user: facts.principal.subject,
    groups: facts.principal.groups,
    time: facts.time,
    ip: facts.ip,
    userAgent: facts.userAgent,
    method: facts.method,
    host: facts.host,
    path: facts.query === '' ? facts.path : `${facts.path}?${facts.query}`,
    routeId: facts.route.id,
    sensitivity: facts.route.sensitivity,
  };
}

/**
 * Runs the scorer. A scorer failure is caught and returned as the dependency that failed,
 * except `WG_SCORER_INVALID_INPUT`, which is returned as `invalidInput`.
 */
export async function scoreWithFailMode(scorer: ScorerPort, facts: RequestFacts, log: Pick<Logger, 'warn'>): Promise<ScoreOutcome> {
  const input = scoreInputOf(facts);
  if (!input) return { result: null };

  try {
    return { result: await scorer.score(input), input };
  } catch (error) {
    if (isScorerError(error, 'WG_SCORER_INVALID_INPUT')) {
      log.warn({ err: error, route: facts.route.id }, 'scorer rejected the request as invalid input; blocking it with 400');
      return { result: null, invalidInput: error.message };
    }
    const failedDependency = dependencyOfScorerError(error);
    const route = facts.route;
    log.warn({ err: error, route: route.id, dependency: failedDependency, fail_mode: route.fail_mode[failedDependency] }, 'scoring failed; applying the route fail mode');
    return { result: null, failedDependency };
  }
}

/**
 * Tells the scorer to withhold the patients of a scored request that showed the user nothing:
 * a block, or a break-glass offer, which blocks unless the user claims emergency access. A
 * retry then does not look explained by the user's patient history. Other actions withhold
 * nothing: their new patients stay pending until the upstream responds (`Scorer.recordShown`).
 */
export function forgetBlockedPatients(scorer: ScorerPort, decision: Decision, scored: ScoreOutcome): void {
  if (!deniesAccess(decision) || scored.result === null || scored.input === undefined) return;

  scorer.forgetDenied?.(scored.input);
}

/**
 * Records a replayed record's patients as withheld or shown, for `wardgate replay`, whose records
 * carry the upstream's response. The patients of a record that Wardgate would not have blocked
 * count as shown. A step-up counts as completed, because the log shows that the user went on to
 * the record.
 */
export function recordReplayedOutcome(scorer: ScorerPort, decision: Decision, scored: ScoreOutcome): void {
  if (scored.result === null || scored.input === undefined) return;
  if (deniesAccess(decision)) scorer.forgetDenied?.(scored.input);
  else scorer.recordShown?.(scored.input);
}

/** Returns whether the decision is a block, or a break-glass offer, which blocks unless the user claims emergency access. */
function deniesAccess(decision: Decision): boolean {
  return decision.action === 'block' || decision.action === 'break_glass';
}

/**
 * Applies the route's fail modes and `require_pq`, then calls the policy. `context` is the
 * policy's input, present only when the policy decided (for shadow comparison). `extra`
 * adds facts that only the live path has, such as an active break-glass grant.
 */
export function decideScored(
  policy: PolicyPort,
  facts: RequestFacts,
  scored: ScoreOutcome,
  extra?: Partial<Pick<DecisionContext, 'breakGlassActive' | 'reviewedBenign' | 'session'>>,
): { decision: Decision; context?: DecisionContext } {
  const route = facts.route;
  if (scored.invalidInput !== undefined) {
    return { decision: { action: 'block', rule: 'request.invalid_input', reasons: [scored.invalidInput], risk: 0 } };
  }
  if (scored.failedDependency && route.fail_mode[scored.failedDependency] === 'closed') {
    return { decision: failModeDecision(scored.failedDependency, 'closed', 0) };
  }

  if (route.require_pq && !POST_QUANTUM_GROUPS.has(facts.tls.group)) {
    const reason = `route ${route.id} requires a hybrid post-quantum TLS group (X25519MLKEM768); this connection negotiated ${facts.tls.group}`;
    return { decision: { action: 'block', rule: 'route.require_pq', reasons: [reason], risk: scored.result?.risk ?? 0 } };
  }

  const context: DecisionContext = {
    principal: facts.principal,
    route: { id: route.id, host: route.host, pathPrefix: route.path_prefix, sensitivity: route.sensitivity },
    request: { method: facts.method, host: facts.host, path: facts.path, ip: facts.ip, queryParams: queryParameterNames(facts.query) },
    risk: scored.result?.risk ?? 0,
    features: scored.result?.features ?? {},
    tls: facts.tls,
    elevatedAcr: facts.elevatedAcr,
    time: facts.time,
    ...(facts.principal?.sessionStartedAt === undefined ? {} : { session: { age_s: Math.max(0, (facts.time - facts.principal.sessionStartedAt) / 1000) } }),
    ...extra,
  };

  return { decision: policy.decide(context), context };
}
