import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Action } from '../../policy/decision.ts';
import { MemoryBaselineStore } from '../baselines/memory-store.ts';
import { FEATURE_SCHEMA } from '../features/schema.ts';
import { PatientPseudonymizer } from '../features/patient.ts';
import { createScorer } from '../scorer.ts';
import { namedFeatures } from '../features/extract.ts';
import { simulationPatientKey } from '../training/pipeline.ts';
import { panelCareSource } from '../training/replay-format.ts';
import { MISUSE_KINDS, ROLES, SIMULATION_START, simulateTraffic, type SimulatedRequest } from '../training/simulator.ts';
import { parseCommandLine } from '../training/options.ts';
import { DEFAULT_TRAINING, buildTrainingSet, fitModel } from '../training/train.ts';
import { EPISODE_CATCH_WINDOW, formatSummary, summarize, type LabelledDecision } from './metrics.ts';

const DAY = 86_400_000;

/** The `ttl` of `step-up-unusual` in policy/examples/demo.yaml, in milliseconds. */
export const EVALUATION_STEP_UP_TTL_MS = 900_000;

/**
 * Maps a risk and the request's features to the action of the evaluation policy, the risk
 * rules of policy/examples/demo.yaml (also in risk-only.yaml): `block-very-high-risk` at
 * risk >= 0.9 unless the request opens an explained patient who is not flagged
 * (`conditions.explained_patient`), `step-up-unusual` at risk >= 0.6. A record is flagged
 * when the action is not `allow`. test/scorer/evaluation-policy.test.ts checks that this
 * function and risk-only.yaml agree.
 */
export function evaluationAction(risk: number, features: Readonly<Record<string, number>>): Action {
  if (risk >= 0.9 && !explainedPatient(features)) return 'block';
  if (risk >= 0.6) return 'step_up';

  return 'allow';
}

/** `conditions.explained_patient` of the demo policy: care, the census or the user's history explains the patient, who is not flagged. */
function explainedPatient(features: Readonly<Record<string, number>>): boolean {
  return (features.patient_access ?? 0) > 0 && features.unexplained_access === 0 && features.patient_flagged === 0;
}

export const EVALUATION = Object.freeze({
  /**
   * Seeds of the test period: other users, other patients, later dates. They were chosen
   * before any run on them and are for the final evaluation only (docs/model-card.md).
   * Seeds 7741 and 8863 tested `wardgate-features-v3`. Seeds 52711, 60493, 71263 and 84017,
   * then 91331, 92459, 93607 and 94813, then 101771, 113173, 127529 and 139907, then 150203,
   * 162557, 171329 and 188017, then 207847, 219613, 233071 and 246509, then 251033, 263429,
   * 277813 and 289651 tested earlier states of `wardgate-features-v4`. All are retired, and
   * docs/model-card.md lists their results.
   */
  testSeeds: Object.freeze([302551, 317693, 329881, 341077]),
  /** Seeds for every tuning run (`npm run eval -- --period validation`). */
  validationSeeds: Object.freeze([2, 3, 4, 6, 7, 8, 10, 11]),
  testDays: 14,
  /** Days of the test period that only build baselines; records from this day on are scored. */
  scoredFromDay: 7,
});

interface ScoredRecord {
  readonly record: SimulatedRequest;
  readonly risk: number;
  readonly row: Float32Array;
}

/**
 * Trains on one simulated period and evaluates on the later test or validation periods, which
 * have different users, through the scorer (features, memory baselines, care source, ONNX model)
 * and the evaluation policy. Then leaves each misuse kind out of training in turn and tests on
 * that kind alone. `listErrors` (validation only) also lists flagged benign records and missed episodes.
 */
export async function runEvaluation(write: (line: string) => void, period: EvaluationPeriod = 'test', listErrors = false): Promise<void> {
  if (listErrors && period !== 'validation') {
    throw new Error('Listing flagged benign records and missed episodes is for tuning and is allowed on the validation period only.');
  }
  const trainingSet = await buildTrainingSet(DEFAULT_TRAINING);
  const trained = fitModel(trainingSet, DEFAULT_TRAINING);
  const trainingSeeds = Array.from({ length: DEFAULT_TRAINING.hospitals }, (_, hospital) => DEFAULT_TRAINING.seed + 4 * hospital);
  write(`training: seeds ${trainingSeeds.join(' and ')} (one per hospital), ${DEFAULT_TRAINING.days} days, ${trainingSet.records.length} records`);

  const seeds = period === 'test' ? EVALUATION.testSeeds : EVALUATION.validationSeeds;
  const simulations = seeds.map((seed, index) => ({
    seed,
    ...simulateTraffic({
      seed,
      days: EVALUATION.testDays,
      prefix: `${period === 'test' ? 't' : 'v'}${index}-`,
      start: SIMULATION_START + (DEFAULT_TRAINING.days + 7) * DAY,
    }),
  }));
  // Every period runs through a scorer of its own. The model's blocks change the baselines (a
  // blocked patient is withheld from the history), so each model scores the whole traffic again.
  const scoreAll = async (model: Uint8Array): Promise<ScoredRecord[]> => {
    const scored: ScoredRecord[] = [];
    for (const simulation of simulations) scored.push(...(await scoreThroughScorer(model, simulation.seed, simulation.records, simulation.panel)));
    return scored;
  };
  const scored = await scoreAll(trained.model);
  write(`${period}: seeds ${seeds.join(' and ')}, ${EVALUATION.testDays} days each, scored from day ${EVALUATION.scoredFromDay}, ${scored.length} records`);

  const all = summarize(scored.map(toDecision));
  write(`all ${formatSummary(all)}`);
  write(`all benign_interrupted_records_per_100_user_days=${all.benign_interrupted_records_per_100_user_days.toFixed(3)}`);
  write(`all benign_stepups_per_100_user_days_apart_from_own_misuse=${apartFromOwnMisuse(scored).toFixed(3)}`);
  for (const role of ROLES) {
    write(`role=${role} ${formatSummary(summarize(scored.filter(({ record }) => record.role === role).map(toDecision)))}`);
  }
  for (const kind of MISUSE_KINDS) {
    const subset = scored.filter(({ record }) => record.label === 'benign' || record.kind === kind);
    write(`kind=${kind} ${formatSummary(summarize(subset.map(toDecision)))}`);
  }

  const leftOutScores = new Map<string, ScoredRecord[]>();
  for (const kind of MISUSE_KINDS) {
    const withoutKind = fitModel(trainingSet, DEFAULT_TRAINING, kind);
    const subset = (await scoreAll(withoutKind.model)).filter(({ record }) => record.label === 'benign' || record.kind === kind);
    leftOutScores.set(kind, subset);
    write(`left_out=${kind} ${formatSummary(summarize(subset.map(toDecision)))}`);
  }

  if (listErrors) {
    const misuseTimes = new Map<string, number[]>();
    for (const { record } of scored) {
      if (record.label === 'misuse') misuseTimes.set(record.input.user, [...(misuseTimes.get(record.input.user) ?? []), record.input.time]);
    }
    for (const { record, risk, row } of scored) {
      if (record.label !== 'benign' || evaluationAction(risk, namedFeatures(row)) === 'allow') continue;
      // Whether the same account was misused within two hours, which shares the hour's counters.
      const near = (misuseTimes.get(record.input.user) ?? []).some((time) => Math.abs(time - record.input.time) <= 2 * 3_600_000);
      write(
        `flagged_benign role=${record.role} user=${record.input.user} day=${record.day} own_misuse_within_2h=${near ? 'yes' : 'no'} ` +
          `${record.input.method} ${record.input.path} risk=${risk.toFixed(3)} ${describeRow(row)}`,
      );
    }
    listMissedEpisodes('all', scored, write);
    for (const [kind, entries] of leftOutScores) listMissedEpisodes(`left_out=${kind}`, entries, write);
  }
}

/**
 * Benign step-ups per 100 user-days, leaving out benign records of an account that was misused
 * within two hours of them (they share that hour's counters with the misuse). A diagnostic
 * beside the target figure, which counts every benign record.
 */
function apartFromOwnMisuse(scored: readonly ScoredRecord[]): number {
  const misuseTimes = new Map<string, number[]>();
  for (const { record } of scored) {
    if (record.label === 'misuse') misuseTimes.set(record.input.user, [...(misuseTimes.get(record.input.user) ?? []), record.input.time]);
  }
  const kept = scored.filter(({ record }) => {
    if (record.label !== 'benign') return true;
    return !(misuseTimes.get(record.input.user) ?? []).some((time) => Math.abs(time - record.input.time) <= 2 * 3_600_000);
  });
  const apart = summarize(kept.map(toDecision));
  // The same user-days as the target figure: scale back to its denominator.
  const userDays = (benignRecords: readonly ScoredRecord[]) =>
    new Set(benignRecords.filter(({ record }) => record.label === 'benign').map(({ record }) => `${record.input.user}\u0000${new Date(record.input.time).toISOString().slice(0, 10)}`)).size;
  const ratioOfDays = userDays(kept) / Math.max(1, userDays(scored));

  return apart.benign_stepups_per_100_user_days * ratioOfDays;
}

/** Writes one line per episode none of whose first records is flagged, with the features of its first record. */
function listMissedEpisodes(label: string, scored: readonly ScoredRecord[], write: (line: string) => void): void {
  const episodes = new Map<string, ScoredRecord[]>();
  for (const entry of scored) {
    if (entry.record.episode === undefined) continue;
    episodes.set(entry.record.episode, [...(episodes.get(entry.record.episode) ?? []), entry]);
  }
  for (const [episode, entries] of episodes) {
    const first = entries.slice(0, EPISODE_CATCH_WINDOW);
    if (first.some(({ risk, row }) => evaluationAction(risk, namedFeatures(row)) !== 'allow')) continue;
    const { record, row } = first[0]!;
    const maxRisk = Math.max(...first.map((entry) => entry.risk));
    write(`missed_episode ${label} ${episode} kind=${record.kind} role=${record.role} records=${entries.length} max_risk=${maxRisk.toFixed(3)} ${describeRow(row)}`);
  }
}

/** Lists the non-zero features of a row as name=value. */
function describeRow(row: Float32Array): string {
  return FEATURE_SCHEMA.names
    .map((name, index) => `${name}=${row[index]!.toFixed(2)}`)
    .filter((text) => !text.endsWith('=0.00'))
    .join(' ');
}

async function scoreThroughScorer(model: Uint8Array, seed: number, records: readonly SimulatedRequest[], panel: Parameters<typeof panelCareSource>[0]): Promise<ScoredRecord[]> {
  const directory = mkdtempSync(join(tmpdir(), 'wardgate-eval-'));
  const modelPath = join(directory, 'model.onnx');
  writeFileSync(modelPath, model);
  const patientKey = simulationPatientKey(seed);
  const scorer = await createScorer({
    store: new MemoryBaselineStore(),
    modelPath,
    patientKey,
    careSource: panelCareSource(panel, new PatientPseudonymizer(patientKey)),
  });
  const scored: ScoredRecord[] = [];

  try {
    for (const record of records) {
      const result = await scorer.score(record.input);
      // As in `wardgate replay`, a blocked request showed nothing, so its patients are withheld
      // from the history. Any other request showed them, and a step-up counts as completed.
      if (evaluationAction(result.risk, result.features) === 'block') scorer.forgetDenied?.(record.input);
      else scorer.recordShown?.(record.input);
      scorer.observeResponse?.({ ...record.input, status: record.status, bytes: record.bytes });
      if (record.day >= EVALUATION.scoredFromDay) {
        scored.push({ record, risk: result.risk, row: Float32Array.from(FEATURE_SCHEMA.names, (name) => result.features[name]!) });
      }
    }
  } finally {
    await scorer.close();
    rmSync(directory, { recursive: true, force: true });
  }

  return scored;
}

function toDecision({ record, risk, row }: ScoredRecord): LabelledDecision {
  const action = evaluationAction(risk, namedFeatures(row));

  return {
    time: record.input.time,
    user: record.input.user,
    action,
    ...(action === 'step_up' ? { stepUpTtlMs: EVALUATION_STEP_UP_TTL_MS } : {}),
    label: record.label,
    ...(record.episode === undefined ? {} : { episode: record.episode }),
  };
}

/** `validation` for tuning, `test` for the final evaluation only. */
export type EvaluationPeriod = 'validation' | 'test';

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseCommandLine(
    { options: { period: { type: 'string', default: 'test' }, 'list-errors': { type: 'boolean', default: false } }, strict: true },
    'usage: npm run eval -- [--period test|validation] [--list-errors]',
  );
  if (values.period !== 'validation' && values.period !== 'test') {
    process.stderr.write(`Invalid option --period: expected validation or test, received ${JSON.stringify(values.period)}.\n`);
    process.exit(2);
  }
  const started = Date.now();
  await runEvaluation((line) => process.stdout.write(`${line}\n`), values.period, values['list-errors']);
  process.stdout.write(`evaluation took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}
