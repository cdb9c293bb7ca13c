import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';

import { ScorerError } from '../errors.ts';
import { FileTooLargeError, NotRegularFileError, readRegularFileWithin } from '../regular-file.ts';
import { FEATURE_SCHEMA } from '../features/schema.ts';
import type { Contribution } from '../types.ts';
import { topContributions } from './contributions.ts';
import { assertFeatureNames, decodeModelMetadata, MAX_MODEL_BYTES, type ModelMetadata } from './metadata.ts';

const INPUT_NAME = 'features';
const OUTPUT_NAME = 'risk';

/** A loaded risk model that keeps the Wardgate model contract. */
export interface RiskModel {
  /** `wardgate.model_version` (or `model`) and the first 12 hex digits of the file's SHA-256. */
  readonly version: string;
  readonly metadata: ModelMetadata;
  /** Scores rows of `FEATURE_SCHEMA.names.length` features; returns one risk in [0, 1] per row. */
  run(rows: readonly Float32Array[]): Promise<number[]>;
  /** Returns the three largest per-feature contributions, highest first; empty without an explanation. */
  explain(row: Float32Array): Contribution[];
  close(): Promise<void>;
}

/**
 * Reads, checks and opens a model file. A path that is not a regular file, such as a FIFO,
 * is rejected without waiting on it.
 *
 * @throws {ScorerError} `WG_SCORER_MODEL_NOT_FOUND`, `WG_SCORER_MODEL_INVALID` or
 *   `WG_SCORER_MODEL_SCHEMA_MISMATCH`.
 */
export async function loadRiskModel(path: string): Promise<RiskModel> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFileWithin(path, MAX_MODEL_BYTES);
  } catch (error) {
    if (error instanceof FileTooLargeError) {
      throw new ScorerError(
        'WG_SCORER_MODEL_INVALID',
        `Invalid model ${path}: expected at most ${MAX_MODEL_BYTES} bytes, got a larger file. Point modelPath at scorer/models/risk-v4.onnx or a model built by npm run train.`,
        { cause: error, detail: { option: 'modelPath' } },
      );
    }
    if (error instanceof NotRegularFileError) {
      throw new ScorerError(
        'WG_SCORER_MODEL_NOT_FOUND',
        `Invalid option modelPath: ${path} is ${error.found}, not a regular file. Point modelPath at a regular file and replace it by rename.`,
        { cause: error, detail: { option: 'modelPath' } },
      );
    }
    throw new ScorerError(
      'WG_SCORER_MODEL_NOT_FOUND',
      `Invalid option modelPath: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). ` +
        'Point modelPath at scorer/models/risk-v4.onnx or a model built by npm run train.',
      { cause: error, detail: { option: 'modelPath' } },
    );
  }

  return createRiskModel(bytes, path);
}

/** Checks and opens a model from its bytes; `source` names it in error messages. */
export async function createRiskModel(bytes: Uint8Array, source: string): Promise<RiskModel> {
  const metadata = decodeModelMetadata(bytes, source);
  assertFeatureNames(metadata.featureNames, FEATURE_SCHEMA, source);

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  } catch (error) {
    throw new ScorerError('WG_SCORER_MODEL_INVALID', `Invalid model ${source}: onnxruntime rejected it (${(error as Error).message}).`, {
      cause: error,
      detail: { source },
    });
  }

  if (!session.inputNames.includes(INPUT_NAME) || !session.outputNames.includes(OUTPUT_NAME)) {
    await session.release();
    throw new ScorerError(
      'WG_SCORER_MODEL_INVALID',
      `Invalid model ${source}: expected input "${INPUT_NAME}" and output "${OUTPUT_NAME}", ` +
        `found inputs ${JSON.stringify(session.inputNames)} and outputs ${JSON.stringify(session.outputNames)}.`,
      { detail: { source } },
    );
  }

  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  const version = `${metadata.modelVersion ?? 'model'}@sha256:${hash}`;

  return new OnnxRiskModel(session, metadata, version);
}

class OnnxRiskModel implements RiskModel {
  readonly version: string;
  readonly metadata: ModelMetadata;
  readonly #session: ort.InferenceSession;

  constructor(session: ort.InferenceSession, metadata: ModelMetadata, version: string) {
    this.#session = session;
    this.metadata = metadata;
    this.version = version;
  }

  async run(rows: readonly Float32Array[]): Promise<number[]> {
    const width = this.metadata.featureNames.length;
    const data = new Float32Array(rows.length * width);
    rows.forEach((row, index) => {
      if (row.length !== width) {
        throw new Error(`RiskModel.run: row ${index} has ${row.length} features, the model reads ${width}`);
      }
      data.set(row, index * width);
    });

    let output: ort.Tensor;
    try {
      const results = await this.#session.run({ [INPUT_NAME]: new ort.Tensor('float32', data, [rows.length, width]) });
      output = results[OUTPUT_NAME]!;
    } catch (error) {
      throw new ScorerError('WG_SCORER_INFERENCE_FAILED', `Model ${this.version} failed to run: ${(error as Error).message}.`, {
        cause: error,
      });
    }

    const risks = Array.from(output.data as Float32Array);
    if (risks.length !== rows.length || risks.some((risk) => Number.isNaN(risk))) {
      throw new ScorerError(
        'WG_SCORER_INFERENCE_FAILED',
        `Model ${this.version} returned ${risks.length} values for ${rows.length} rows, or NaN; expected one risk in [0, 1] per row.`,
      );
    }

    return risks.map((risk) => Math.min(1, Math.max(0, risk)));
  }

  explain(row: Float32Array): Contribution[] {
    const explanation = this.metadata.explanation;

    return explanation === undefined ? [] : topContributions(explanation, this.metadata.featureNames, row);
  }

  async close(): Promise<void> {
    await this.#session.release();
  }
}
