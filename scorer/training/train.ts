import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FEATURE_SCHEMA, type FeatureName } from '../features/schema.ts';
import type { TreeExplanation } from '../model/metadata.ts';
import { encodeTreeModel } from '../model/tree-writer.ts';
import { fitBoostedTrees, type BoostingOptions } from './boosting.ts';
import { parseCommandLine, parseIntegerOption } from './options.ts';
import { extractFeatureRows } from './pipeline.ts';
import { Prng } from './prng.ts';
import { MISUSE_KINDS, ROLES, simulateTraffic, type MisuseKind, type SimulatedRequest } from './simulator.ts';

export interface TrainingConfig {
  readonly seed: number;
  /** Simulated days whose requests train the model; baselines start empty on day 0. */
  readonly days: number;
  readonly scale?: number;
  /** Mean misuse episodes per simulated day. */
  readonly episodesPerDay?: number;
  /**
   * Simulated hospitals to train on, each with its own users, patients and baselines.
   * Hospital k uses seed `seed + 4 * k`, which keeps the validation seeds 2 and 3 out.
   */
  readonly hospitals?: number;
  readonly modelVersion?: string;
  readonly boosting?: Partial<BoostingOptions>;
  /** Share of benign rows kept for fitting (weighted up by its inverse); misuse rows are all kept. */
  readonly benignSample?: number;
}

/** Labelled feature rows of one simulation, in time order. */
export interface TrainingSet {
  readonly records: readonly SimulatedRequest[];
  readonly rows: readonly Float32Array[];
}

export interface TrainingResult {
  readonly model: Uint8Array;
  readonly explanation: TreeExplanation;
  readonly summary: Record<string, unknown>;
}

/**
 * Features along which the risk may only rise: more of any of them never makes an access less
 * suspicious. Without the constraint, a model can learn that a signal is reassuring because the
 * training data showed it only in benign work, such as bulk exports by physicians. The
 * constraint lets misuse that the model never saw still score on these signals.
 */
export const MONOTONE_INCREASING: readonly FeatureName[] = Object.freeze([
  'request_rate_ratio',
  'requests_this_minute',
  'hour_of_week_rarity',
  'peer_hour_rarity',
  'network_new_for_user',
  'network_new_for_peers',
  'device_new_for_user',
  'patients_hour_ratio',
  'patients_day_ratio',
  'outside_care_share',
  'outside_care_hour',
  'patient_flagged',
  'flagged_patients_hour',
  'bulk_export',
  'exports_day',
  'bulk_export_outside_care',
  'bytes_hour_ratio',
  'denied_hour',
  'denied_share_hour',
  'flagged_without_care',
  'anomaly_score',
  'route_patient_rarity',
  'patient_new_for_user',
  'new_patients_hour_ratio',
  'not_admitted_unusual',
  'unexplained_access',
  'unexplained_hour_ratio',
]);

export const DEFAULT_BOOSTING: BoostingOptions = Object.freeze({
  trees: 80,
  depth: 4,
  learningRate: 0.25,
  l2: 1,
  minChildWeight: 2,
  bins: 48,
  monotone: Object.freeze(FEATURE_SCHEMA.names.map((name) => (MONOTONE_INCREASING.includes(name) ? 1 : 0))),
});

export const DEFAULT_TRAINING = Object.freeze({
  seed: 1,
  days: 28,
  scale: 1,
  episodesPerDay: 10,
  hospitals: 4,
  modelVersion: 'risk-v4',
  benignSample: 0.5,
} satisfies TrainingConfig);

/** Simulates the training period of each hospital and extracts its feature rows. */
export async function buildTrainingSet(config: Pick<TrainingConfig, 'seed' | 'days' | 'scale' | 'episodesPerDay' | 'hospitals'>): Promise<TrainingSet> {
  const records: SimulatedRequest[] = [];
  const rows: Float32Array[] = [];

  for (let hospital = 0; hospital < (config.hospitals ?? 1); hospital += 1) {
    const seed = config.seed + 4 * hospital;
    const simulation = simulateTraffic({
      seed,
      days: config.days,
      scale: config.scale ?? 1,
      episodesPerDay: config.episodesPerDay ?? 6,
      prefix: hospital === 0 ? '' : `h${hospital}-`,
    });
    records.push(...simulation.records);
    rows.push(...(await extractFeatureRows(simulation, seed)));
  }

  return { records, rows };
}

/**
 * Fits the boosted trees on a training set, optionally without one misuse kind, and encodes
 * the ONNX model. The same set and config always give the same model bytes.
 */
export function fitModel(set: TrainingSet, config: TrainingConfig, exclude?: MisuseKind): TrainingResult {
  const random = new Prng(config.seed ^ 0x5eed);
  const sample = config.benignSample ?? DEFAULT_TRAINING.benignSample;
  const rows: Float32Array[] = [];
  const labels: number[] = [];
  const weights: number[] = [];
  const used: SimulatedRequest[] = [];

  set.records.forEach((record, index) => {
    if (record.kind === exclude) return;
    const misuse = record.label === 'misuse';
    if (!misuse && !random.chance(sample)) return;
    rows.push(set.rows[index]!);
    labels.push(misuse ? 1 : 0);
    weights.push(misuse ? 1 : 1 / sample);
    used.push(record);
  });

  const options = { ...DEFAULT_BOOSTING, ...config.boosting };
  const explanation = fitBoostedTrees(rows, labels, weights, options);
  const summary = {
    seed: config.seed,
    simulator: 'wardgate-simulator-v3',
    days: config.days,
    scale: config.scale ?? 1,
    episodes_per_day: config.episodesPerDay ?? 6,
    hospitals: config.hospitals ?? 1,
    model: 'gradient-boosted trees, logistic loss',
    boosting: { ...options, monotone: MONOTONE_INCREASING },
    benign_sample: sample,
    excluded_kind: exclude ?? null,
    records: describe(set.records.filter((record) => record.kind !== exclude)),
    fitted_rows: used.length,
  };
  const model = encodeTreeModel({
    featureNames: FEATURE_SCHEMA.names,
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: config.modelVersion ?? DEFAULT_TRAINING.modelVersion,
    explanation,
    trainingSummary: summary,
  });

  return { model, explanation, summary };
}

/** Simulates, extracts and fits in one step: what `npm run train` runs. */
export async function trainModel(config: TrainingConfig): Promise<TrainingResult> {
  return fitModel(await buildTrainingSet(config), config);
}

/** Counts records by label, kind and role, episodes by kind, and users by role. */
export function describe(records: readonly SimulatedRequest[]): Record<string, unknown> {
  const byLabel: Record<string, number> = {};
  const byKind: Record<string, number> = {};
  const byRole: Record<string, number> = Object.fromEntries(ROLES.map((role) => [role, 0]));
  const episodes: Record<string, Set<string>> = Object.fromEntries(MISUSE_KINDS.map((kind) => [kind, new Set<string>()]));
  const users: Record<string, Set<string>> = Object.fromEntries(ROLES.map((role) => [role, new Set<string>()]));

  for (const record of records) {
    byLabel[record.label] = (byLabel[record.label] ?? 0) + 1;
    byKind[record.kind] = (byKind[record.kind] ?? 0) + 1;
    byRole[record.role] = (byRole[record.role] ?? 0) + 1;
    users[record.role]!.add(record.input.user);
    if (record.episode !== undefined) episodes[record.kind]?.add(record.episode);
  }

  return {
    total: records.length,
    by_label: byLabel,
    by_kind: byKind,
    by_role: byRole,
    episodes_by_kind: Object.fromEntries(Object.entries(episodes).map(([kind, set]) => [kind, set.size])),
    users_by_role: Object.fromEntries(Object.entries(users).map(([role, set]) => [role, set.size])),
  };
}

async function main(): Promise<void> {
  const { values } = parseCommandLine(
    {
      options: {
        seed: { type: 'string', default: String(DEFAULT_TRAINING.seed) },
        days: { type: 'string', default: String(DEFAULT_TRAINING.days) },
        out: { type: 'string', default: fileURLToPath(new URL('../models/risk-v4.onnx', import.meta.url)) },
      },
      strict: true,
    },
    'usage: npm run train -- [--seed N] [--days N] [--out FILE.onnx]',
  );
  const seed = parseIntegerOption('--seed', values.seed, 0, 2 ** 32 - 1);
  const days = parseIntegerOption('--days', values.days, 1, 365);

  const result = await trainModel({ ...DEFAULT_TRAINING, seed, days });
  mkdirSync(dirname(values.out), { recursive: true });
  const temporary = `${values.out}.${process.pid}.tmp`;
  writeFileSync(temporary, result.model);
  renameSync(temporary, values.out);

  const records = result.summary.records as { total: number; by_label: Record<string, number>; episodes_by_kind: Record<string, number> };
  process.stdout.write(
    `wrote ${values.out} (${result.model.byteLength} bytes, seed ${seed}, ${days} days)\n` +
      `trained on ${records.total} records (${records.by_label.misuse ?? 0} misuse), episodes by kind ${JSON.stringify(records.episodes_by_kind)}\n` +
      'run npm run eval for the held-out evaluation\n',
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
}
