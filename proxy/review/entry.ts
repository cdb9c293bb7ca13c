import type { Decision } from '../../policy/decision.ts';
import type { Contribution } from '../../scorer/types.ts';
import type { PatientTargetPseudonymizer } from '../patient-target.ts';

/** Reason an entry is in the review queue. */
export type ReviewKind = 'decision' | 'break_glass';

/**
 * One item for analysts: a decision with the context and explanation needed to judge it.
 * Patient ids never appear in clear: `path` carries keyed pseudonyms.
 */
export interface ReviewEntry {
  readonly kind: ReviewKind;
  /** Request time in milliseconds since the epoch. */
  readonly time: number;
  readonly trace_id: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly route: string;
  readonly method: string;
  /** Normalized path with patient ids replaced by `~<pseudonym>` and other query values by `_`. */
  readonly path: string;
  /** Pseudonyms of the patients the path names. */
  readonly patients?: readonly string[];
  readonly action: Decision['action'];
  readonly rule: string;
  readonly reasons: readonly string[];
  readonly risk: number;
  readonly top_features: readonly Contribution[];
  readonly model_version?: string;
  /** The limit, on the first decision entry at or past `review.max_entries_per_user_hour`. The user's later low-risk decisions that UTC hour are not queued. */
  readonly user_hour_limit?: number;
  /** Break-glass claims only. */
  readonly break_glass?: { readonly reason_code: string; readonly justification: string; readonly ttl: number; readonly expires_at: number };
}

/**
 * Replaces the patient ids in a normalized path (query included) with `~<pseudonym>`, as
 * the audit trail does. Values of other query parameters are replaced by `_` because they
 * may hold names or other identifiers.
 */
export function pseudonymizePath(path: string, pseudonymizer: PatientTargetPseudonymizer): { path: string; patients: string[] } {
  const { target, patients } = pseudonymizer.pseudonymizeTarget(path, { dropOtherValues: true });
  return { path: target, patients };
}

/** Returns the pattern a benign label accepts: the route and the sorted names of the top features. */
export function patternOf(route: string, top: readonly { readonly name: string }[]): string {
  return `${route}|${top.map((item) => item.name).sort().join(',')}`;
}
