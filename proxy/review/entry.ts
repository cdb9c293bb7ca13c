import type { Decision } from '../../policy/decision.ts';
import { extractPatientIds, type PatientPseudonymizer } from '../../scorer/features/patient.ts';
import type { Contribution } from '../../scorer/types.ts';

/** Why an entry is in the review queue. */
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
  /** Normalized path with patient ids replaced by `pid:<pseudonym>` and other query values removed. */
  readonly path: string;
  readonly action: Decision['action'];
  readonly rule: string;
  readonly reasons: readonly string[];
  readonly risk: number;
  readonly top_features: readonly Contribution[];
  readonly model_version?: string;
  /** Break-glass claims only. */
  readonly break_glass?: { readonly reason_code: string; readonly justification: string; readonly ttl: number; readonly expires_at: number };
}

/** Query parameters whose values are patient references; every other query value is dropped. */
const PATIENT_PARAMETERS = new Set(['patient', 'subject']);

/**
 * Replaces the patient ids in a normalized path (query included) with keyed pseudonyms.
 * Values of other query parameters are replaced by `_` because they may hold names or
 * other identifiers. A path the patient extractor rejects becomes `(unparseable path)`.
 */
export function pseudonymizePath(path: string, pseudonymizer: PatientPseudonymizer): string {
  let ids: Set<string>;
  try {
    ids = new Set(extractPatientIds(path));
  } catch {
    return '(unparseable path)';
  }

  const replace = (id: string) => (ids.has(id) ? `pid:${pseudonymizer.pseudonymize(id)}` : id);
  const queryStart = path.indexOf('?');
  const pathname = queryStart === -1 ? path : path.slice(0, queryStart);
  const segments = pathname.split('/').map(replace);
  if (queryStart === -1) return segments.join('/');

  const parameters: string[] = [];
  for (const [name, value] of new URLSearchParams(path.slice(queryStart + 1))) {
    const kept = PATIENT_PARAMETERS.has(name)
      ? value.split(',').map((reference) => (reference.startsWith('Patient/') ? `Patient/${replace(reference.slice(8))}` : replace(reference))).join(',')
      : '_';
    parameters.push(`${encodeURIComponent(name)}=${kept}`);
  }
  return `${segments.join('/')}?${parameters.join('&')}`;
}

/** Returns the pattern a benign label accepts: the route and the sorted names of the top features. */
export function patternOf(route: string, top: readonly { readonly name: string }[]): string {
  return `${route}|${top.map((item) => item.name).sort().join(',')}`;
}
