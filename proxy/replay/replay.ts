import type { Logger } from 'pino';
import type { Action } from '../../policy/decision.ts';
import type { LabelledDecision } from '../../scorer/evaluation/metrics.ts';
import type { Contribution } from '../../scorer/types.ts';
import { NO_PATIENT_PATHS, type PatientPaths } from '../../scorer/features/patient-paths.ts';
import { HttpError } from '../http/errors.ts';
import { normalizePath } from '../http/normalize-path.ts';
import type { Principal } from '../identity/principal.ts';
import { INVALID_PATIENT_ID_CODE, invalidPatientIds, recordReplayedOutcome, scoreAndDecide, type RequestFacts } from '../pipeline/decide.ts';
import type { PolicyPort, RouterPort, ScorerPort } from '../ports.ts';
import { inTimeOrder, type AccessRecord } from './access-log.ts';
import { isBrowserIconPath } from '../pipeline/response-observation.ts';

/** The TLS facts replay assumes when a record has no `tls_group`: what Wardgate's listener prefers. */
export const REPLAY_TLS = Object.freeze({ protocol: 'TLSv1.3', group: 'X25519MLKEM768' });

/** One replayed decision, as printed by `wardgate replay` (one JSON object per line). */
export interface ReplayedDecision {
  readonly line: number;
  /** ISO 8601 time of the record. */
  readonly time: string;
  readonly user: string;
  readonly route: string;
  readonly action: Action;
  readonly rule: string;
  readonly reasons: readonly string[];
  /** Risk rounded to 4 decimals; 0 when scoring failed and the route's fail mode is open. Top values are rounded likewise. */
  readonly risk: number;
  readonly top: readonly Contribution[];
  readonly label?: 'benign' | 'misuse';
  readonly episode?: string;
}

/** A record that was read but not decided, such as a path the live proxy would reject with 400 (an invalid patient id among them). */
export interface SkippedRecord {
  readonly line: number;
  readonly reason: string;
}

export interface ReplayDependencies {
  readonly scorer: ScorerPort;
  /** The compiled `scorer.patient_paths` that `scorer` was created with; default none (FHIR forms only). */
  readonly patientPaths?: PatientPaths;
  readonly policy: PolicyPort;
  readonly router: RouterPort;
  readonly log: Pick<Logger, 'warn'>;
  /** Waits for the baseline updates that run after a request (peer groups), so that Redis and memory replays agree. */
  readonly settle?: () => Promise<void>;
}

export interface ReplayOutcome {
  readonly decisions: LabelledDecision[];
  readonly skipped: SkippedRecord[];
}

/**
 * Decides recorded requests in time order through the live decision core (`scoreAndDecide`):
 * path normalization, routing, scoring against the baselines, fail modes and the policy.
 * After each decision the patients of a blocked record are withheld from the user's patient
 * history, those of any other record count as shown (a step-up as completed), and the record's
 * status and size are passed to `observeResponse`, as the live proxy does.
 *
 * Every recorded user counts as authenticated by a browser session with no step-up
 * elevation, because the access log does not carry the authentication context.
 */
export async function replayRecords(
  records: readonly AccessRecord[],
  deps: ReplayDependencies,
  emit: (decision: ReplayedDecision) => void,
): Promise<ReplayOutcome> {
  const decisions: LabelledDecision[] = [];
  const skipped: SkippedRecord[] = [];

  for (const record of inTimeOrder(records)) {
    const facts = requestFacts(record, deps.router, deps.patientPaths ?? NO_PATIENT_PATHS);
    if ('reason' in facts) {
      skipped.push(facts);
      continue;
    }

    const { decision, scored } = await scoreAndDecide(deps.scorer, deps.policy, facts, deps.log);
    if (scored.invalidInput !== undefined) {
      skipped.push({ line: record.line, reason: `record rejected as the live proxy would reject it with 400 (WG_REQUEST_INVALID): ${scored.invalidInput}` });
      continue;
    }
    recordReplayedOutcome(deps.scorer, decision, scored);
    if (!isBrowserIconPath(facts.path)) deps.scorer.observeResponse?.({ user: record.user, groups: record.groups, time: record.time, routeId: facts.route.id, status: record.status, bytes: record.bytes });
    await deps.settle?.();

    const labels = { ...(record.label ? { label: record.label } : {}), ...(record.episode ? { episode: record.episode } : {}) };
    decisions.push({
      time: record.time,
      user: record.user,
      action: decision.action,
      ...(decision.stepUp === undefined ? {} : { stepUpTtlMs: decision.stepUp.ttl * 1000 }),
      ...labels,
    });
    emit({
      line: record.line,
      time: new Date(record.time).toISOString(),
      user: record.user,
      route: facts.route.id,
      action: decision.action,
      rule: decision.rule,
      reasons: decision.reasons,
      risk: round(decision.risk),
      top: (scored.result?.top ?? []).map((item) => ({ name: item.name, value: round(item.value), contribution: round(item.contribution) })),
      ...labels,
    });
  }

  return { decisions, skipped };
}

function requestFacts(record: AccessRecord, router: RouterPort, patientPaths: PatientPaths): RequestFacts | SkippedRecord {
  let target;
  try {
    target = normalizePath(record.target, record.method);
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    return { line: record.line, reason: `path rejected as the live proxy would reject it with 400 (${error.code}): ${error.message}` };
  }

  const invalid = invalidPatientIds(target.path, target.query, patientPaths);
  if (invalid) {
    return { line: record.line, reason: `path rejected as the live proxy would reject it with 400 (${INVALID_PATIENT_ID_CODE}): ${invalid.message}` };
  }

  const route = router.match(record.host, target.path);
  if (!route) {
    return { line: record.line, reason: `no route for host ${JSON.stringify(record.host)} and path ${JSON.stringify(target.path)}` };
  }

  const principal: Principal = { subject: record.user, groups: record.groups, method: 'session' };

  return {
    route,
    principal,
    method: record.method,
    host: record.host,
    path: target.path,
    query: target.query,
    ip: record.ip,
    userAgent: record.userAgent,
    tls: record.tlsGroup ? { protocol: REPLAY_TLS.protocol, group: record.tlsGroup } : REPLAY_TLS,
    elevatedAcr: [],
    time: record.time,
  };
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
