import type { RawBaseline, SubjectBaseline, PeerBaseline } from '../baselines/store.ts';
import type { ScoreInput } from '../types.ts';
import { isBulkExport } from './patient.ts';
import { FEATURE_SCHEMA, WARM_UP_DAYS } from './schema.ts';

const HOURS_PER_WEEK = 168;
const HOUR_SMOOTHING = 0.1;
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Requests after which a network or device counts as familiar. */
export const FAMILIAR_AFTER_REQUESTS = 50;
/** Hours with responses a user needs before `bytes_hour_ratio` compares against their own mean. */
export const BYTES_BASELINE_HOURS = 8;
const SENSITIVITY = Object.freeze({ low: 0, normal: 0.5, high: 1 });

/** Facts from the care-relationship source about the patients of one request. */
export interface CareFacts {
  /** Patients of the request that are not in the user's care set (0 when the relationship is unknown). */
  readonly outsideCare: number;
  /** True when the request names patients and the source could not tell the user's care set. */
  readonly unknown: boolean;
  /** True when a patient of the request is flagged VIP. */
  readonly vip: boolean;
  /** True when a patient of the request is flagged as an employee of the hospital. */
  readonly employee: boolean;
  /** Patients of the request flagged VIP or employee. */
  readonly flagged: number;
  /**
   * Patients of the request flagged VIP or employee that are not in the user's care set, or
   * all flagged patients when the care relationship is unknown.
   */
  readonly flaggedWithoutCare: number;
  /** Patients of the request without an encounter in progress (0 when the census is unknown). */
  readonly notAdmitted: number;
  /** True when the request names patients and the source could not tell whether they are in the hospital. */
  readonly censusUnknown: boolean;
  /**
   * Per patient of the request: true when neither the care set nor the census explains the
   * access (not in the user's care set or the relationship is unknown, and not known to be in
   * the hospital). The baseline store counts such patients when they are new to the user.
   */
  readonly unexplained: readonly boolean[];
}

export const NO_PATIENT_CARE_FACTS: CareFacts = Object.freeze({
  outsideCare: 0,
  unknown: false,
  vip: false,
  employee: false,
  flagged: 0,
  flaggedWithoutCare: 0,
  notAdmitted: 0,
  censusUnknown: false,
  unexplained: Object.freeze([]),
});

/** Scales of the components of `anomaly_score`: the feature value at which a component reaches 1. */
const ANOMALY_SCALES = Object.freeze({ rate: 4, patients: 3, hourRarity: 4, denied: 4, bytes: 4, exports: 4 });

export interface FeatureContext {
  /** Patient ids the request names (after de-duplication). */
  readonly patientCount: number;
  /** Offset of the hospital's local time from UTC in minutes, for `night_time`. */
  readonly utcOffsetMinutes: number;
  readonly care: CareFacts;
}

/**
 * Builds the feature vector of one request in {@link FEATURE_SCHEMA} order. Live scoring,
 * the training simulator and `npm run eval` all call this function, so the model reads the
 * same features in training as in production. docs/features.md explains each feature.
 */
export function buildFeatureVector(input: ScoreInput, raw: RawBaseline, context: FeatureContext): Float32Array {
  const { user, peer } = raw;
  const warmUp = Math.min(1, user.historyDays / WARM_UP_DAYS);
  const blend = (pickUser: (subject: SubjectBaseline) => number, pickPeer: (subject: PeerBaseline) => number): number =>
    warmUp * pickUser(user) + (1 - warmUp) * pickPeer(peer);

  const meanRate = blend((s) => ratio(s.requests, s.activeMinutes), (s) => ratio(s.requests, s.activeMinutes));
  const meanPatientsPerHour = blend((s) => ratio(s.patientHours, s.activeHours), (s) => ratio(s.patientHours, s.activeHours));
  const meanPatientsPerDay = blend((s) => ratio(s.patientDays, s.activeDays), (s) => ratio(s.patientDays, s.activeDays));
  // Leave out the current hour's own minutes, so a burst at an unusual hour is compared with
  // the history before it and cannot make its own hour look usual.
  const userHourShare = hourShare(Math.max(0, user.hourOfWeekMinutes - user.hourMinutes), Math.max(0, user.hourOfWeekTotal - user.hourMinutes));
  const peerHourShare = hourShare(Math.max(0, peer.hourOfWeekMinutes - peer.hourMinutes), Math.max(0, peer.hourOfWeekTotal - peer.hourMinutes));
  const blendedHourShare = warmUp * userHourShare + (1 - warmUp) * peerHourShare;
  const localHour = Math.floor(((((input.time + context.utcOffsetMinutes * 60_000) % 86_400_000) + 86_400_000) % 86_400_000) / 3_600_000);
  const bulkExport = isBulkExport(input.path) ? 1 : 0;
  const outsideShare = context.patientCount === 0 ? 0 : Math.min(1, context.care.outsideCare / context.patientCount);
  const meanBytesPerHour = ratio(user.responseBytes, user.responseHours);
  const bytesRatio = user.responseHours < BYTES_BASELINE_HOURS || user.responsesHour === 0 ? 0 : Math.log2((user.bytesHour + 1) / (meanBytesPerHour + 1));

  const values = [
    Math.log2((user.minuteRequests + 1) / (meanRate + 1)),
    Math.log2(1 + user.minuteRequests),
    -Math.log2(HOURS_PER_WEEK * blendedHourShare),
    -Math.log2(HOURS_PER_WEEK * peerHourShare),
    novelty(user.networkRequests),
    novelty(peer.networkRequests),
    novelty(user.deviceRequests),
    Math.log2(1 + user.hourPatients),
    Math.log2((user.hourPatients + 1) / (meanPatientsPerHour + 1)),
    Math.log2(1 + user.dayPatients),
    Math.log2((user.dayPatients + 1) / (meanPatientsPerDay + 1)),
    outsideShare,
    Math.log2(1 + user.outsideCareHour),
    context.care.unknown ? 1 : 0,
    // One feature for both flags: VIP and employee snooping share their signals, so each
    // teaches the model about the other.
    context.care.vip || context.care.employee ? 1 : 0,
    Math.log2(1 + user.flaggedHour),
    bulkExport,
    Math.log2(1 + user.exportsDay),
    bulkExport * outsideShare,
    bytesRatio,
    Math.log2(1 + user.deniedHour),
    user.deniedHour / (user.responsesHour + 1),
    SENSITIVITY[input.sensitivity] ?? SENSITIVITY.normal,
    localHour >= 22 || localHour < 6 ? 1 : 0,
    input.sessionAgeSeconds === undefined ? 0 : Math.log2(1 + Math.max(0, input.sessionAgeSeconds) / 3600),
    warmUp,
    Math.log2(1 + context.patientCount),
    WRITE_METHODS.has(input.method.toUpperCase()) ? 1 : 0,
    Math.log2(1 + context.care.flaggedWithoutCare),
  ];
  values.push(anomalyScore(values));
  values.push(
    // Scaled by how much history there is, so a new user's first patients read as "no
    // evidence" (0) rather than as rare.
    context.patientCount === 0 ? 0 : (1 - ratio(user.routePatientRequests, user.routePatientTotal)) * Math.min(1, user.routePatientTotal / FAMILIAR_AFTER_REQUESTS),
    context.patientCount === 0 ? 0 : Math.min(1, user.newPatients / context.patientCount),
    Math.log2((user.newPatientsHour + 1) / (ratio(user.newPatientsTotal, user.activeHours) + 1)),
    context.patientCount === 0 ? 0 : Math.min(1, context.care.notAdmitted / context.patientCount),
    // How unusual patients outside the hospital are for this user: billing staff work on
    // discharged patients every day, ward staff rarely open one.
    context.patientCount === 0
      ? 0
      : Math.min(1, context.care.notAdmitted / context.patientCount) *
        (1 - ratio(user.notAdmittedAccesses, user.patientAccesses)) *
        Math.min(1, user.patientAccesses / FAMILIAR_AFTER_REQUESTS),
    context.care.censusUnknown ? 1 : 0,
    context.patientCount === 0 ? 0 : Math.min(1, user.unexplainedPatients / context.patientCount),
    unexplainedHourRatio(user),
    unexplainedUsual(user, peer, warmUp),
  );

  if (values.length !== FEATURE_SCHEMA.names.length) {
    throw new Error(`buildFeatureVector: built ${values.length} features, FEATURE_SCHEMA names ${FEATURE_SCHEMA.names.length}`);
  }

  return Float32Array.from(values);
}

/**
 * Computes a hand-set, unsupervised anomaly score in [0, 1] from the other features. It is the
 * largest of six components, each divided by its value in {@link ANOMALY_SCALES} and clipped
 * to [0, 1]: the request rate, the distinct patients this hour and the response bytes against
 * the user's own baseline, a new network or device at an unusual hour, denied responses, and
 * exports today. It is not fitted to any misuse kind, so it carries over to kinds the model never saw.
 */
function anomalyScore(values: readonly number[]): number {
  const at = (name: (typeof FEATURE_SCHEMA.names)[number]): number => values[FEATURE_SCHEMA.names.indexOf(name)]!;
  const scaled = (value: number, scale: number): number => Math.min(1, Math.max(0, value / scale));

  return Math.max(
    scaled(at('request_rate_ratio'), ANOMALY_SCALES.rate),
    scaled(at('patients_hour_ratio'), ANOMALY_SCALES.patients),
    Math.max(at('network_new_for_user'), at('device_new_for_user')) * scaled(at('hour_of_week_rarity'), ANOMALY_SCALES.hourRarity),
    scaled(at('denied_hour'), ANOMALY_SCALES.denied),
    scaled(at('bytes_hour_ratio'), ANOMALY_SCALES.bytes),
    scaled(at('exports_day'), ANOMALY_SCALES.exports),
  );
}

/** Hours of history below which the mean of unexplained patients per hour counts as over this many hours. */
const UNEXPLAINED_MIN_HOURS = 8;

/**
 * Compares the unexplained patients of the current hour with the user's mean per active hour
 * before it. The mean leaves out the current hour, so a burst cannot raise its own baseline,
 * and it spreads a thin history over at least {@link UNEXPLAINED_MIN_HOURS} hours.
 */
function unexplainedHourRatio(user: SubjectBaseline): number {
  const before = Math.max(0, user.unexplainedTotal - user.unexplainedHour);
  const mean = before / Math.max(UNEXPLAINED_MIN_HOURS, user.activeHours - 1);

  return Math.log2((user.unexplainedHour + 1) / (mean + 1));
}

/**
 * Returns the share of patient accesses that were unexplained before the current hour,
 * blended with the peer group's share by warm-up, so a new user is compared with their peers.
 * Halving can leave the user's differences briefly out of range, hence the clamps.
 * NOTE: the peer share includes the current hour. A user alone in their peer group (or one of
 * very few) therefore raises it with their own burst. That fades the floor in scorer.ts before
 * it reaches the step-up level, although the learned model still scores the burst.
 */
function unexplainedUsual(user: SubjectBaseline, peer: PeerBaseline, warmUp: number): number {
  const userShare = ratio(Math.max(0, user.unexplainedTotal - user.unexplainedHour), Math.max(0, user.patientAccesses - user.patientAccessesHour));
  const peerShare = ratio(peer.unexplained, peer.patientAccesses);

  return Math.min(1, Math.max(0, warmUp * userShare + (1 - warmUp) * peerShare));
}

/** Returns the vector as a frozen record keyed by feature name. */
export function namedFeatures(vector: Float32Array): Readonly<Record<string, number>> {
  const entries = FEATURE_SCHEMA.names.map((name, index) => [name, vector[index]!]);

  return Object.freeze(Object.fromEntries(entries));
}

/** 1 for a network or device never seen, falling linearly to 0 at {@link FAMILIAR_AFTER_REQUESTS}. */
function novelty(requestsBefore: number): number {
  return 1 - Math.min(1, requestsBefore / FAMILIAR_AFTER_REQUESTS);
}

/**
 * Share of active minutes in one hour of the week, smoothed with a tenth of a minute per
 * hour, so an empty history gives the uniform 1/168 and a thin one is not flattened.
 */
function hourShare(minutes: number, total: number): number {
  return (minutes + HOUR_SMOOTHING) / (total + HOUR_SMOOTHING * HOURS_PER_WEEK);
}

function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}
