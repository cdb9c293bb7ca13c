import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { FEATURE_SCHEMA } from '../features/schema.ts';
import type { LinearExplanation } from '../model/metadata.ts';
import { encodeLogisticModel } from '../model/onnx-writer.ts';
import { fitLogistic } from './logistic.ts';
import { extractFeatureRows } from './pipeline.ts';
import { ROLES, simulateTraffic, type Label, type SimulatedRequest } from './simulator.ts';

export interface TrainingConfig {
  readonly seed: number;
  /** Days whose requests train the model; baselines start empty on day 0. */
  readonly trainDays: number;
  /** Following days held out for the evaluation. */
  readonly evalDays: number;
  readonly scale?: number;
  readonly iterations?: number;
  readonly modelVersion?: string;
}

export interface Evaluation {
  readonly threshold: number;
  /** Share of misuse requests at or above the threshold. */
  readonly requestRecall: number;
  /** Share of misuse episodes with at least one request at or above the threshold. */
  readonly episodeRecall: number;
  /** Share of normal requests at or above the threshold. */
  readonly falsePositiveRate: number;
  readonly misuseRequests: number;
  readonly normalRequests: number;
  readonly episodes: number;
}

export interface TrainingResult {
  readonly model: Uint8Array;
  readonly explanation: LinearExplanation;
  readonly summary: Record<string, unknown>;
  readonly evaluation: Evaluation;
}

export const DEFAULT_TRAINING: TrainingConfig = Object.freeze({
  seed: 1,
  trainDays: 21,
  evalDays: 7,
  scale: 1,
  iterations: 500,
  modelVersion: 'risk-v1',
});

const THRESHOLD = 0.5;

/**
 * Simulates `trainDays + evalDays` days of traffic, fits the model on the first `trainDays`
 * and evaluates it on the rest. The same config always gives the same model bytes.
 */
export function trainModel(config: TrainingConfig): TrainingResult {
  const records = simulateTraffic({ seed: config.seed, days: config.trainDays + config.evalDays, scale: config.scale ?? 1 });
  const rows = extractFeatureRows(records, config.seed);
  const training = records.map((record, index) => ({ record, row: rows[index]! })).filter(({ record }) => record.day < config.trainDays);
  const heldOut = records.map((record, index) => ({ record, row: rows[index]! })).filter(({ record }) => record.day >= config.trainDays);

  const explanation = fitLogistic(
    training.map(({ row }) => row),
    training.map(({ record }) => (record.label === 'normal' ? 0 : 1)),
    { iterations: config.iterations ?? 300, learningRate: 0.05, l2: 0.001 },
  );
  const evaluation = evaluate(explanation, heldOut);
  const summary = {
    seed: config.seed,
    simulator: 'wardgate-simulator-v1',
    train_days: config.trainDays,
    eval_days: config.evalDays,
    scale: config.scale ?? 1,
    records: countBy(training.map(({ record }) => record)),
    held_out: { ...countBy(heldOut.map(({ record }) => record)), evaluation },
  };
  const model = encodeLogisticModel({
    featureNames: FEATURE_SCHEMA.names,
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: config.modelVersion ?? 'risk-v1',
    explanation,
    trainingSummary: summary,
  });

  return { model, explanation, summary, evaluation };
}

/** Risk of one row from the explanation, the same logistic function the ONNX graph computes. */
export function logisticRisk(explanation: LinearExplanation, row: Float32Array): number {
  let z = explanation.bias;
  for (let i = 0; i < row.length; i += 1) {
    z += (explanation.weights[i]! * (row[i]! - explanation.means[i]!)) / explanation.scales[i]!;
  }

  return 1 / (1 + Math.exp(-z));
}

function evaluate(explanation: LinearExplanation, heldOut: { record: SimulatedRequest; row: Float32Array }[]): Evaluation {
  let misuse = 0;
  let caught = 0;
  let normal = 0;
  let falseAlarms = 0;
  const episodes = new Map<number, boolean>();

  for (const { record, row } of heldOut) {
    const alert = logisticRisk(explanation, row) >= THRESHOLD;
    if (record.label === 'normal') {
      normal += 1;
      falseAlarms += alert ? 1 : 0;
    } else {
      misuse += 1;
      caught += alert ? 1 : 0;
      episodes.set(record.episode, (episodes.get(record.episode) ?? false) || alert);
    }
  }

  const detected = [...episodes.values()].filter(Boolean).length;

  return {
    threshold: THRESHOLD,
    requestRecall: round(misuse === 0 ? 0 : caught / misuse),
    episodeRecall: round(episodes.size === 0 ? 0 : detected / episodes.size),
    falsePositiveRate: round(normal === 0 ? 0 : falseAlarms / normal),
    misuseRequests: misuse,
    normalRequests: normal,
    episodes: episodes.size,
  };
}

function countBy(records: readonly SimulatedRequest[]): { by_label: Record<string, number>; by_role: Record<string, number> } {
  const byLabel: Record<string, number> = {};
  const byRole: Record<string, number> = Object.fromEntries(ROLES.map((role) => [role, 0]));
  for (const record of records) {
    byLabel[record.label satisfies Label] = (byLabel[record.label] ?? 0) + 1;
    byRole[record.role] = (byRole[record.role] ?? 0) + 1;
  }

  return { by_label: byLabel, by_role: byRole };
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: String(DEFAULT_TRAINING.seed) },
      out: { type: 'string', default: fileURLToPath(new URL('../models/risk-v1.onnx', import.meta.url)) },
      'train-days': { type: 'string', default: String(DEFAULT_TRAINING.trainDays) },
      'eval-days': { type: 'string', default: String(DEFAULT_TRAINING.evalDays) },
    },
    strict: true,
  });
  const seed = parseInteger('--seed', values.seed, 0, 2 ** 32 - 1);
  const trainDays = parseInteger('--train-days', values['train-days'], 1, 365);
  const evalDays = parseInteger('--eval-days', values['eval-days'], 1, 365);

  const result = trainModel({ ...DEFAULT_TRAINING, seed, trainDays, evalDays });
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, result.model);

  const { evaluation } = result;
  process.stdout.write(
    `wrote ${values.out} (${result.model.byteLength} bytes, seed ${seed})\n` +
      `held-out ${evalDays} days, threshold ${evaluation.threshold}: ` +
      `request recall ${evaluation.requestRecall}, episode recall ${evaluation.episodeRecall} (${evaluation.episodes} episodes), ` +
      `false-positive rate ${evaluation.falsePositiveRate} (${evaluation.normalRequests} normal requests)\n`,
  );
}

function parseInteger(option: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`Invalid option ${option}: expected an integer from ${min} to ${max}, received ${JSON.stringify(text)}.\n`);
    process.exit(2);
  }

  return value;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main();
}
