import type { ResponseObservation, ScoreInput } from '../types.ts';

/**
 * Counters of one user after the current request was added. All values are integers so that
 * every store implementation returns the same numbers.
 */
export interface SubjectBaseline {
  /** Requests, halved together with the other decayed counters. */
  readonly requests: number;
  /** Distinct active minutes, decayed. */
  readonly activeMinutes: number;
  /** Distinct active hours, decayed. */
  readonly activeHours: number;
  /** Distinct active UTC days, decayed. */
  readonly activeDays: number;
  /** Distinct (patient, hour) pairs, decayed. */
  readonly patientHours: number;
  /** Distinct (patient, UTC day) pairs, decayed. */
  readonly patientDays: number;
  /** Active minutes in the current hour of the week, decayed. */
  readonly hourOfWeekMinutes: number;
  /** Active minutes over all 168 hours of the week, decayed. */
  readonly hourOfWeekTotal: number;
  /** Distinct active UTC days, never decayed: the days of history. */
  readonly historyDays: number;
  /** Requests from the request's network before this one (0: a new network). */
  readonly networkRequests: number;
  /** Distinct networks remembered, at most the network cap. */
  readonly networkCount: number;
  /** Requests from the request's device before this one (0: a new device). */
  readonly deviceRequests: number;
  /** Distinct devices remembered, at most the device cap. */
  readonly deviceCount: number;
  /** Requests in the current minute. */
  readonly minuteRequests: number;
  /** Distinct patients in the current hour (saturates at the patient cap). */
  readonly hourPatients: number;
  /** Distinct patients in the current UTC day (saturates at the patient cap). */
  readonly dayPatients: number;
  /** Bulk exports in the current UTC day, this request included. */
  readonly exportsDay: number;
  /** Patient accesses outside the user's care relationships in the current hour. */
  readonly outsideCareHour: number;
  /** Active minutes in the current hour, this request's minute included. */
  readonly hourMinutes: number;
  /** Accesses to VIP or employee patients in the current hour. */
  readonly flaggedHour: number;
  /** Responses recorded in the current hour (written by `observeResponse`). */
  readonly responsesHour: number;
  /** 403 and 404 responses recorded in the current hour. */
  readonly deniedHour: number;
  /** Response bytes recorded in the current hour. */
  readonly bytesHour: number;
  /** Response bytes over all hours with responses, decayed. */
  readonly responseBytes: number;
  /** Distinct hours with at least one recorded response, decayed. */
  readonly responseHours: number;
  /** Earlier requests naming patients on the request's route (0: the first, or no patients named). */
  readonly routePatientRequests: number;
  /** Earlier requests naming patients on any route. */
  readonly routePatientTotal: number;
  /** Patients of the request not in the user's patient history before it. */
  readonly newPatients: number;
  /** Patients new to the user's history in the current hour, this request included. */
  readonly newPatientsHour: number;
  /** Patients new to the user's history over all hours, decayed. */
  readonly newPatientsTotal: number;
  /** Patient accesses, decayed. */
  readonly patientAccesses: number;
  /** Accesses to patients without an encounter in progress, decayed. */
  readonly notAdmittedAccesses: number;
  /** Patients of the request new to the user whom neither care nor the census explains. */
  readonly unexplainedPatients: number;
  /** Such unexplained patients in the current hour, this request included. */
  readonly unexplainedHour: number;
  /** Such unexplained patients over all hours, decayed. */
  readonly unexplainedTotal: number;
  /** Patient accesses in the current hour, this request included. */
  readonly patientAccessesHour: number;
}

/**
 * The peer group's baseline as it was before the current request, from the peer summary
 * the store keeps. Peer counters sum over all members of the group.
 */
export interface PeerBaseline {
  readonly requests: number;
  readonly activeMinutes: number;
  readonly activeHours: number;
  readonly activeDays: number;
  readonly patientHours: number;
  readonly patientDays: number;
  readonly hourOfWeekMinutes: number;
  readonly hourOfWeekTotal: number;
  /** Requests of the group from the request's network (0: new to the whole group). */
  readonly networkRequests: number;
  /** Active (member, minute) pairs of the group in the current hour. */
  readonly hourMinutes: number;
  /** Patient accesses of the group, decayed. */
  readonly patientAccesses: number;
  /** Unexplained patient accesses of the group, decayed. */
  readonly unexplained: number;
}

/** Result of one observation: the user's baseline after the update and their peer group's. */
export interface RawBaseline {
  readonly user: SubjectBaseline;
  readonly peer: PeerBaseline;
}

/** Facts about the request that the store counts but cannot derive from the request itself. */
export interface ObserveExtras {
  /** Patient pseudonyms named by the request; never clear patient ids. */
  readonly patients?: readonly string[];
  /** How many of `patients` are outside the user's care relationships. */
  readonly outsideCare?: number;
  /** How many of `patients` are flagged VIP or employee. */
  readonly flagged?: number;
  /** Whether the request is a bulk export. */
  readonly bulkExport?: boolean;
  /** How many of `patients` have no encounter in progress (0 when the census is unknown). */
  readonly notAdmitted?: number;
  /**
   * Per entry of `patients`: true when neither the user's care set nor the census explains the
   * access. That is, the patient is not in the care set (or the relationship is unknown) and is
   * not known to be in the hospital. The store counts such patients when they are also new to
   * the user.
   */
  readonly unexplained?: readonly boolean[];
}

/**
 * Reads and updates baselines. Implementations take the time from `input.time` only, never
 * from a clock, so recorded traffic replays through the same code with the same results.
 */
export interface BaselineStore {
  /**
   * Adds one request to the user's baseline (one round trip to the backing store) and returns
   * it with the peer group's baseline. The peer group's summary is updated afterwards, off
   * the request path; {@link settle} waits for that.
   *
   * @throws {ScorerError} `WG_SCORER_STORE_UNAVAILABLE` when the backing store fails.
   */
  observe(input: ScoreInput, extras?: ObserveExtras): Promise<RawBaseline>;
  /**
   * Records the response to a request (status and bytes) in the user's baseline. Callers do
   * not wait for it on the request path.
   *
   * @throws {ScorerError} `WG_SCORER_STORE_UNAVAILABLE` when the backing store fails.
   */
  observeResponse?(observation: ResponseObservation): Promise<void>;
  /**
   * Marks patients of the user's patient history as withheld (history score -1) after a
   * request that named them was blocked. Until the user's first request on a later UTC day drops
   * the mark with the other old entries, every request for them finds them new and, unless care
   * or the census explains them, unexplained. The hour's counters count a withheld patient once
   * per hour, the long-term counters not again. It changes no counter itself. Callers do not
   * wait for it on the request path. Pseudonyms not in the history are ignored.
   *
   * @throws {ScorerError} `WG_SCORER_STORE_UNAVAILABLE` when the backing store fails.
   */
  forgetPatients?(user: string, pseudonyms: readonly string[]): Promise<void>;
  /**
   * Records that a response showed the patients to the user. {@link observe} enters a patient
   * new to the user's history as pending, and this call makes a pending patient known with the
   * UTC day of `time`, so that later requests find them explained by the history. Until then,
   * and for a request that was blocked or only stepped up, the patient stays new, and
   * unexplained unless care or the census explains them, like a withheld patient. Withheld
   * patients and patients not in the history stay as they are. Callers do not wait for it on
   * the request path.
   *
   * @throws {ScorerError} `WG_SCORER_STORE_UNAVAILABLE` when the backing store fails.
   */
  showPatients?(user: string, pseudonyms: readonly string[], time: number): Promise<void>;
  /** Waits until updates started off the request path have finished (tests, replay). */
  settle?(): Promise<void>;
  /** Releases what the store opened itself; a client passed in by the caller stays open. */
  close(): Promise<void>;
}

/** Order of the integers a store returns for the user, shared by both implementations. */
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
  'exportsDay',
  'outsideCareHour',
  'flaggedHour',
  'hourMinutes',
  'responsesHour',
  'deniedHour',
  'bytesHour',
  'responseBytes',
  'responseHours',
  'routePatientRequests',
  'routePatientTotal',
  'newPatients',
  'newPatientsHour',
  'newPatientsTotal',
  'patientAccesses',
  'notAdmittedAccesses',
  'unexplainedPatients',
  'unexplainedHour',
  'unexplainedTotal',
  'patientAccessesHour',
] as const satisfies readonly (keyof SubjectBaseline)[]);

/** Order of the peer summary's counters, shared by both implementations and peer.lua. */
export const PEER_FIELDS = Object.freeze([
  'requests',
  'activeMinutes',
  'activeHours',
  'activeDays',
  'patientHours',
  'patientDays',
  'hourOfWeekTotal',
  'patientAccesses',
  'unexplained',
] as const satisfies readonly (keyof PeerBaseline)[]);
