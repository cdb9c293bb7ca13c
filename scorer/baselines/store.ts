import type { ScoreInput } from '../types.ts';

/**
 * Counters of one baseline subject (a user, or a peer group) after the current request was
 * added. All values are integers so that every store implementation returns the same numbers.
 * "Member" is the user within a subject: for a user baseline the user is the only member.
 */
export interface SubjectBaseline {
  /** Requests, halved together with the other decayed counters. */
  readonly requests: number;
  /** Distinct (member, minute) pairs with activity, decayed. */
  readonly activeMinutes: number;
  /** Distinct (member, hour) pairs with activity, decayed. */
  readonly activeHours: number;
  /** Distinct (member, UTC day) pairs with activity, decayed. */
  readonly activeDays: number;
  /** Distinct (member, patient, hour) triples, decayed. */
  readonly patientHours: number;
  /** Distinct (member, patient, UTC day) triples, decayed. */
  readonly patientDays: number;
  /** Active minutes in the current hour of the week, decayed. */
  readonly hourOfWeekMinutes: number;
  /** Active minutes over all 168 hours of the week, decayed. */
  readonly hourOfWeekTotal: number;
  /** Distinct (member, UTC day) pairs, never decayed; for a user, the days of history. */
  readonly historyDays: number;
  /** Requests from the request's network before this one (0: a new network). */
  readonly networkRequests: number;
  /** Distinct networks remembered, at most the subject's network cap. */
  readonly networkCount: number;
  /** Requests with the request's user agent hash before this one (0: a new device). */
  readonly deviceRequests: number;
  /** Distinct user agent hashes remembered, at most the subject's device cap. */
  readonly deviceCount: number;
  /** Requests by this member in the current minute. */
  readonly minuteRequests: number;
  /** Distinct (member, patient) pairs in the current hour; for a user, their distinct patients. */
  readonly hourPatients: number;
  /** Distinct (member, patient) pairs in the current UTC day. */
  readonly dayPatients: number;
}

/** Result of one observation: the user's baseline and their peer group's. */
export interface RawBaseline {
  readonly user: SubjectBaseline;
  readonly peer: SubjectBaseline;
}

/**
 * Reads and updates baselines. Implementations take the time from `input.time` only, never
 * from a clock, so recorded traffic replays through the same code with the same results.
 */
export interface BaselineStore {
  /**
   * Adds one request to the user's and the peer group's baselines and returns both after the
   * update. `patientPseudonyms` are keyed pseudonyms, never clear patient ids.
   *
   * @throws {ScorerError} `WG_SCORER_STORE_UNAVAILABLE` when the backing store fails.
   */
  observe(input: ScoreInput, patientPseudonyms?: string | readonly string[]): Promise<RawBaseline>;
  /** Releases what the store opened itself; a client passed in by the caller stays open. */
  close(): Promise<void>;
}

/** Order of the integers a store returns per subject, shared by both implementations. */
export const SUBJECT_FIELDS = Object.freeze([
  'requests',
  'activeMinutes',
  'activeHours',
  'activeDays',
  'patientHours',
  'patientDays',
  'hourOfWeekMinutes',
  'hourOfWeekTotal',
  'historyDays',
  'networkRequests',
  'networkCount',
  'deviceRequests',
  'deviceCount',
  'minuteRequests',
  'hourPatients',
  'dayPatients',
] as const satisfies readonly (keyof SubjectBaseline)[]);
