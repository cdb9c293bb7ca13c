import type { BaselineStore } from './baselines/store.ts';
import { NO_CARE_SOURCE, type CareRelationshipSource } from './care/source.ts';
import { ScorerError } from './errors.ts';
import { namedFeatures } from './features/extract.ts';
import { FeatureExtractor } from './features/extractor.ts';
import { PatientPseudonymizer } from './features/patient.ts';
import { compilePatientPaths } from './features/patient-paths.ts';
import { loadRiskModel, type RiskModel } from './model/risk-model.ts';
import type { ResponseObservation, ScoreInput, ScoreResult } from './types.ts';

export interface ScorerOptions {
  /** Baseline store: `RedisBaselineStore`, or `MemoryBaselineStore` for one instance without Redis. */
  readonly store: BaselineStore;
  /** Path of the ONNX model, for example `scorer/models/risk-v4.onnx`. */
  readonly modelPath: string;
  /** HMAC key (at least 32 bytes) that turns patient ids into pseudonyms; copied, never logged. */
  readonly patientKey: Uint8Array;
  /** Offset of the hospital's local time from UTC in minutes, for `night_time`; default 0. */
  readonly utcOffsetMinutes?: number;
  /** Care relationships and patient flags; default `NO_CARE_SOURCE` (relationship unknown). */
  readonly careSource?: CareRelationshipSource;
  /** Settings of the unexplained-access floor; default {@link DEFAULT_UNEXPLAINED_FLOOR}. */
  readonly unexplainedFloor?: UnexplainedFloorSettings;
  /**
   * Path templates of pages that name a patient besides the FHIR forms (`scorer.patient_paths`),
   * such as `/patients/{id}`, at most 32; default none. Scoring, `forgetDenied` and
   * `recordShown` read the same ids. See `patientPathProblem` for the template rules.
   */
  readonly patientPaths?: readonly string[];
  /**
   * Receives the errors that `observeResponse`, `forgetDenied` and `recordShown` catch, with the
   * method and the request's user and route; by default they are dropped.
   */
  readonly onResponseError?: (error: unknown, update: BaselineUpdate) => void;
  /** An opened model, such as a `ModelRunner` with hot reload and batching; `modelPath` is then only used in messages. */
  readonly model?: RiskModel;
}

/** The fire-and-forget baseline update that failed, for `ScorerOptions.onResponseError`. */
export interface BaselineUpdate {
  readonly method: 'observeResponse' | 'forgetDenied' | 'recordShown';
  readonly user: string;
  readonly routeId: string;
}

export interface Scorer {
  readonly modelVersion: string;
  /**
   * Scores one request: updates the baselines, builds the features and runs the model.
   *
   * @throws {ScorerError} `WG_SCORER_STORE_UNAVAILABLE` (apply the route's fail mode),
   *   `WG_SCORER_INVALID_INPUT`, `WG_SCORER_INFERENCE_FAILED`.
   */
  score(input: ScoreInput): Promise<ScoreResult>;
  /**
   * Records the response to a scored request (status, bytes) for the response-side features.
   * Fire-and-forget: it returns at once, and errors go to `onResponseError`, never to the caller.
   */
  observeResponse?(observation: ResponseObservation): void;
  /**
   * Marks every patient of a request as withheld in the user's patient history
   * (`BaselineStore.forgetPatients`), for a request whose enforced decision was a block or a
   * break-glass offer. Such a request showed the user nothing, so until a later UTC day its
   * patients count as new, and as unexplained unless care or the census explains them. Fire-and-forget: it returns at once, and errors go to
   * `onResponseError`, never to the caller.
   */
  forgetDenied?(input: ScoreInput): void;
  /**
   * Records that the upstream responded to a scored request, so that its patients count as known
   * to the user from now on (`BaselineStore.showPatients`). Until this call a patient the user
   * never opened before stays new for every request, and unexplained unless care or the census
   * explains them. So requests in flight at the same time, and a retry of a request that was
   * only stepped up, find no explanation in the history. A HEAD or OPTIONS request shows no record,
   * so it records nothing. Fire-and-forget: it returns at once, and errors go to
   * `onResponseError`, never to the caller.
   */
  recordShown?(input: ScoreInput): void;
  /** Releases the model. The store belongs to the caller and stays open. */
  close(): Promise<void>;
}

/**
 * Creates the behavioural scorer.
 *
 * @example
 * const redis = await createRedisClient(process.env.REDIS_URL);
 * const scorer = await createScorer({
 *   store: new RedisBaselineStore(redis, { prefix: 'wg:bl:' }),
 *   modelPath: 'scorer/models/risk-v4.onnx',
 *   patientKey: randomBytes(32),
 * });
 * const { risk, top } = await scorer.score(input);
 *
 * @throws {ScorerError} `WG_SCORER_INVALID_OPTION` and the model errors of `loadRiskModel`.
 */
export async function createScorer(options: ScorerOptions): Promise<Scorer> {
  if (options.store === null || typeof options.store?.observe !== 'function') {
    throwInvalidOption('store', 'a BaselineStore', typeof options.store);
  }

  if (typeof options.modelPath !== 'string' || options.modelPath === '') {
    throwInvalidOption('modelPath', 'the path of an ONNX model file', JSON.stringify(options.modelPath));
  }

  const utcOffsetMinutes = options.utcOffsetMinutes ?? 0;
  if (!Number.isInteger(utcOffsetMinutes) || Math.abs(utcOffsetMinutes) > 14 * 60) {
    throwInvalidOption('utcOffsetMinutes', 'an integer between -840 and 840', String(utcOffsetMinutes));
  }

  const careSource = options.careSource ?? NO_CARE_SOURCE;
  if (typeof careSource?.careSet !== 'function' || typeof careSource.patientFlags !== 'function') {
    throwInvalidOption('careSource', 'a CareRelationshipSource with careSet and patientFlags', typeof careSource);
  }

  const floor = options.unexplainedFloor ?? DEFAULT_UNEXPLAINED_FLOOR;
  if (!(Number.isFinite(floor?.scale) && floor.scale > 0)) {
    throwInvalidOption('unexplainedFloor.scale', 'a number above 0', String(floor?.scale));
  }
  if (!(Number.isFinite(floor.usualLimit) && floor.usualLimit >= 0 && floor.usualLimit <= 1)) {
    throwInvalidOption('unexplainedFloor.usualLimit', 'a number from 0 to 1 (0 turns the floor off)', String(floor.usualLimit));
  }
  if (!(Number.isFinite(floor.max) && floor.max >= 0 && floor.max <= 1)) {
    throwInvalidOption('unexplainedFloor.max', 'a number from 0 to 1', String(floor.max));
  }

  const patientPaths = compilePatientPaths(options.patientPaths ?? [], 'patientPaths');

  const extractor = new FeatureExtractor({
    store: options.store,
    pseudonymizer: new PatientPseudonymizer(options.patientKey),
    careSource,
    utcOffsetMinutes,
    patientPaths,
  });
  const model = options.model ?? (await loadRiskModel(options.modelPath));

  return new BehaviouralScorer(options.store, extractor, model, options.onResponseError ?? (() => {}), Object.freeze({ ...floor }));
}

class BehaviouralScorer implements Scorer {
  readonly #store: BaselineStore;
  readonly #extractor: FeatureExtractor;
  readonly #model: RiskModel;
  readonly #onResponseError: (error: unknown, update: BaselineUpdate) => void;
  readonly #floor: UnexplainedFloorSettings;

  constructor(store: BaselineStore, extractor: FeatureExtractor, model: RiskModel, onResponseError: (error: unknown, update: BaselineUpdate) => void, floor: UnexplainedFloorSettings) {
    this.#store = store;
    this.#extractor = extractor;
    this.#model = model;
    this.#onResponseError = onResponseError;
    this.#floor = floor;
  }

  /** Read on every call, because a hot-reloading model changes its version. */
  get modelVersion(): string {
    return this.#model.version;
  }

  async score(input: ScoreInput): Promise<ScoreResult> {
    const vector = await this.#extractor.extract(input);
    const [learned] = await this.#model.run([vector]);
    const features = namedFeatures(vector);
    const floor = unexplainedAccessFloor(features, this.#floor);
    let top = this.#model.explain(vector);
    if (floor > learned!) {
      const lift = { name: 'unexplained_hour_ratio', value: features.unexplained_hour_ratio!, contribution: logit(floor) - logit(learned!) };
      top = [lift, ...top.filter((item) => item.name !== lift.name)].slice(0, 3);
    }

    return Object.freeze({
      risk: Math.max(learned!, floor),
      features,
      top: Object.freeze(top),
      modelVersion: this.#model.version,
    });
  }

  observeResponse(observation: ResponseObservation): void {
    if (this.#store.observeResponse === undefined) {
      return;
    }

    const update: BaselineUpdate = { method: 'observeResponse', user: observation.user, routeId: observation.routeId };
    try {
      this.#store.observeResponse(observation).catch((error: unknown) => this.#report(error, update));
    } catch (error) {
      this.#report(error, update);
    }
  }

  // NOTE: an allowed request for the same patient observed between the block and this call
  // is withheld too, so that patient counts as new until a later UTC day.
  forgetDenied(input: ScoreInput): void {
    const update: BaselineUpdate = { method: 'forgetDenied', user: input.user, routeId: input.routeId };
    try {
      if (this.#store.forgetPatients === undefined) return;
      const pseudonyms = this.#extractor.patientPseudonyms(input);
      if (pseudonyms.length === 0) return;
      this.#store.forgetPatients(input.user, pseudonyms).catch((error: unknown) => this.#report(error, update));
    } catch (error) {
      this.#report(error, update);
    }
  }

  recordShown(input: ScoreInput): void {
    const update: BaselineUpdate = { method: 'recordShown', user: input.user, routeId: input.routeId };
    try {
      if (this.#store.showPatients === undefined || NO_RECORD_METHODS.has(input.method)) return;
      const pseudonyms = this.#extractor.patientPseudonyms(input);
      if (pseudonyms.length === 0) return;
      this.#store.showPatients(input.user, pseudonyms, input.time).catch((error: unknown) => this.#report(error, update));
    } catch (error) {
      this.#report(error, update);
    }
  }

  async close(): Promise<void> {
    await this.#model.close();
  }

  #report(error: unknown, update: BaselineUpdate): void {
    try {
      this.#onResponseError(error, update);
    } catch {
      // A failing error callback must not turn a fire-and-forget call into a crash.
    }
  }
}

/** Methods whose response carries no record, so `recordShown` ignores them. */
const NO_RECORD_METHODS: ReadonlySet<string> = new Set(['HEAD', 'OPTIONS']);

function throwInvalidOption(option: string, expected: string, received: string): never {
  throw new ScorerError('WG_SCORER_INVALID_OPTION', `Invalid option ${option}: expected ${expected}, received ${received}.`, {
    detail: { option },
  });
}

/** Settings of {@link unexplainedAccessFloor}. */
export interface UnexplainedFloorSettings {
  /** `unexplained_hour_ratio` at which the floor would reach 1 without the `max` cap. */
  readonly scale: number;
  /** Usual share of unexplained patient accesses at which the floor has faded to 0; 0 turns the floor off. */
  readonly usualLimit: number;
  /** Highest value of the floor. Set below the policy's block threshold, the floor alone can step a request up but not block it. */
  readonly max: number;
}

/** The settings `npm run eval` measured (docs/model-card.md). */
export const DEFAULT_UNEXPLAINED_FLOOR: UnexplainedFloorSettings = Object.freeze({ scale: 1.25, usualLimit: 0.125, max: 0.85 });

/**
 * A hand-set lower bound on the risk, independent of any misuse kind the model was trained on.
 * When the request opens a patient whom nothing explains (`unexplained_access` > 0), it is
 * `unexplained_hour_ratio / 1.25`, clipped to [0, 1], times `1 - unexplained_usual / 0.125`
 * (at least 0), at most 0.85, else 0. For a user whose earlier accesses were all explained,
 * the first unexplained patient in the hour gives 0.8 and the second 0.85, a step-up under the
 * demo policy. The cap keeps the floor below the demo policy's block threshold of 0.9, because
 * a hand-set rule should not lock a clinician out when the care source is down or does not list
 * them yet. The learned model can still block. The usual-share factor fades the floor out for
 * staff for whom unexplained patients are part of the job, such as billing clerks without a
 * care relationship, who are left to the learned model. A learned model cannot score a kind of
 * misuse it never saw. This floor keeps accesses that neither care, the census nor the user's
 * own history explains from passing silently, whatever their kind. docs/model-card.md reports
 * its effect. The numbers above are those of {@link DEFAULT_UNEXPLAINED_FLOOR}, and a
 * `usualLimit` of 0 turns the floor off.
 */
export function unexplainedAccessFloor(features: Readonly<Record<string, number>>, settings: UnexplainedFloorSettings = DEFAULT_UNEXPLAINED_FLOOR): number {
  if (!((features.unexplained_access ?? 0) > 0) || settings.usualLimit === 0) return 0;
  const rare = Math.max(0, 1 - (features.unexplained_usual ?? 0) / settings.usualLimit);

  return Math.min(settings.max, Math.min(1, Math.max(0, (features.unexplained_hour_ratio ?? 0) / settings.scale)) * rare);
}

function logit(p: number): number {
  const clipped = Math.min(1 - 1e-6, Math.max(1e-6, p));

  return Math.log(clipped / (1 - clipped));
}
