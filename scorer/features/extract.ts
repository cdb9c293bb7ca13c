import type { RawBaseline, SubjectBaseline } from '../baselines/store.ts';
import type { ScoreInput } from '../types.ts';
import { isBulkExport } from './patient.ts';
import { FEATURE_SCHEMA, WARM_UP_DAYS } from './schema.ts';

const HOURS_PER_WEEK = 168;
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Requests after which a network or device counts as familiar. */
export const FAMILIAR_AFTER_REQUESTS = 50;
const SENSITIVITY = Object.freeze({ low: 0, normal: 0.5, high: 1 });

export interface FeatureContext {
  /** Patient ids the request names (after de-duplication). */
  readonly patientCount: number;
  /** Offset of the hospital's local time from UTC in minutes, for `night_time`. */
  readonly utcOffsetMinutes: number;
}

/**
 * Builds the feature vector of one request in {@link FEATURE_SCHEMA} order. Live scoring
 * and the training simulator both call this function, so the model reads the same
 * features in training as in production.
 */
export function buildFeatureVector(input: ScoreInput, raw: RawBaseline, context: FeatureContext): Float32Array {
  const { user, peer } = raw;
  const warmUp = Math.min(1, user.historyDays / WARM_UP_DAYS);
  const blend = (pick: (subject: SubjectBaseline) => number): number =>
    warmUp * pick(user) + (1 - warmUp) * pick(peer);

  const meanRate = blend((s) => ratio(s.requests, s.activeMinutes));
  const meanPatientsPerHour = blend((s) => ratio(s.patientHours, s.activeHours));
  const meanPatientsPerDay = blend((s) => ratio(s.patientDays, s.activeDays));
  const hourShare = blend((s) => (s.hourOfWeekMinutes + 1) / (s.hourOfWeekTotal + HOURS_PER_WEEK));
  const localHour = Math.floor((((input.time + context.utcOffsetMinutes * 60_000) % 86_400_000) + 86_400_000) % 86_400_000 / 3_600_000);

  const values = [
    Math.log2((user.minuteRequests + 1) / (meanRate + 1)),
    Math.log2(1 + user.minuteRequests),
    -Math.log2(HOURS_PER_WEEK * hourShare),
    novelty(user.networkRequests),
    novelty(peer.networkRequests),
    novelty(user.deviceRequests),
    Math.log2(1 + user.hourPatients),
    Math.log2((user.hourPatients + 1) / (meanPatientsPerHour + 1)),
    Math.log2(1 + user.dayPatients),
    Math.log2((user.dayPatients + 1) / (meanPatientsPerDay + 1)),
    isBulkExport(input.path) ? 1 : 0,
    SENSITIVITY[input.sensitivity] ?? SENSITIVITY.normal,
    localHour >= 22 || localHour < 6 ? 1 : 0,
    warmUp,
    Math.log2(1 + context.patientCount),
    WRITE_METHODS.has(input.method.toUpperCase()) ? 1 : 0,
  ];

  if (values.length !== FEATURE_SCHEMA.names.length) {
    throw new Error(`buildFeatureVector: built ${values.length} features, FEATURE_SCHEMA names ${FEATURE_SCHEMA.names.length}`);
  }

  return Float32Array.from(values);
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

function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}
