import type { BaselineStore } from './baselines/store.ts';
import { ScorerError, isScorerError } from './errors.ts';
import { buildFeatureVector, namedFeatures } from './features/extract.ts';
import { PatientPseudonymizer, extractPatientIds } from './features/patient.ts';
import { loadRiskModel, type RiskModel } from './model/risk-model.ts';
import type { ScoreInput, ScoreResult } from './types.ts';
import type { CareRelationshipSource } from './care/source.ts';

export interface ScorerOptions {
  /** Baseline store: `RedisBaselineStore`, or `MemoryBaselineStore` for one instance without Redis. */
  readonly store: BaselineStore;
  /** Path of the ONNX model, for example `scorer/models/risk-v1.onnx`. */
  readonly modelPath: string;
  /** HMAC key (at least 32 bytes) that turns patient ids into pseudonyms; copied, never logged. */
  readonly patientKey: Uint8Array;
  /** Offset of the hospital's local time from UTC in minutes, for `night_time`; default 0. */
  readonly utcOffsetMinutes?: number;
  /**
   * Care relationships and patient flags, for features that read them; default `NO_CARE_SOURCE`.
   * NOTE: no feature of the v1 schema reads it yet, so the scorer does not consult it.
   */
  readonly careSource?: CareRelationshipSource;
  /** An opened model, such as a `ModelRunner` with hot reload and batching; `modelPath` is then only used in messages. */
  readonly model?: RiskModel;
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
 *   modelPath: 'scorer/models/risk-v1.onnx',
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

  const pseudonymizer = new PatientPseudonymizer(options.patientKey);
  const model = options.model ?? (await loadRiskModel(options.modelPath));

  return new BehaviouralScorer(options.store, model, pseudonymizer, utcOffsetMinutes);
}

class BehaviouralScorer implements Scorer {
  readonly #store: BaselineStore;
  readonly #model: RiskModel;
  readonly #pseudonymizer: PatientPseudonymizer;
  readonly #utcOffsetMinutes: number;

  constructor(store: BaselineStore, model: RiskModel, pseudonymizer: PatientPseudonymizer, utcOffsetMinutes: number) {
    this.#store = store;
    this.#model = model;
    this.#pseudonymizer = pseudonymizer;
    this.#utcOffsetMinutes = utcOffsetMinutes;
  }

  /** Read on every call, because a hot-reloading model changes its version. */
  get modelVersion(): string {
    return this.#model.version;
  }

  async score(input: ScoreInput): Promise<ScoreResult> {
    const patientIds = extractPatientIds(input.path);
    const pseudonyms = patientIds.map((id) => this.#pseudonymizer.pseudonymize(id));

    let raw;
    try {
      raw = await this.#store.observe(input, pseudonyms);
    } catch (error) {
      throw isScorerError(error)
        ? error
        : new ScorerError('WG_SCORER_STORE_UNAVAILABLE', `Baseline store failed: ${(error as Error).message}.`, { cause: error });
    }

    const vector = buildFeatureVector(input, raw, { patientCount: patientIds.length, utcOffsetMinutes: this.#utcOffsetMinutes });
    const [risk] = await this.#model.run([vector]);

    return Object.freeze({
      risk: risk!,
      features: namedFeatures(vector),
      top: Object.freeze(this.#model.explain(vector)),
      modelVersion: this.#model.version,
    });
  }

  async close(): Promise<void> {
    await this.#model.close();
  }
}

function throwInvalidOption(option: string, expected: string, received: string): never {
  throw new ScorerError('WG_SCORER_INVALID_OPTION', `Invalid option ${option}: expected ${expected}, received ${received}.`, {
    detail: { option },
  });
}
