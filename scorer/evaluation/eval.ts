import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Action } from '../../policy/decision.ts';
import { MemoryBaselineStore } from '../baselines/memory-store.ts';
import { FEATURE_SCHEMA } from '../features/schema.ts';
import { PatientPseudonymizer } from '../features/patient.ts';
import { createRiskModel } from '../model/risk-model.ts';
import { createScorer } from '../scorer.ts';
import { simulationPatientKey } from '../training/pipeline.ts';
import { panelCareSource } from '../training/replay-format.ts';
import { MISUSE_KINDS, ROLES, SIMULATION_START, simulateTraffic, type SimulatedRequest } from '../training/simulator.ts';
import { DEFAULT_TRAINING, buildTrainingSet, fitModel } from '../training/train.ts';
import { formatSummary, summarize, type LabelledDecision } from './metrics.ts';

const DAY = 86_400_000;

/**
 * Maps a risk to the action of the evaluation policy, which is the risk rules of
 * policy/examples/demo.yaml (`block-very-high-risk` at risk >= 0.9, `step-up-unusual` at
 * risk >= 0.6). A record is flagged when the action is not `allow`.
 */
export function evaluationAction(risk: number): Action {
  if (risk >= 0.9) return 'block';
  if (risk >= 0.6) return 'step_up';

  return 'allow';
}

export const EVALUATION = Object.freeze({
  /** The test period: other users, other patients, later dates, another seed. */
  testSeed: 1001,
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
 * Trains on one simulated period and evaluates on a later period with different users, through
 * the scorer (features, memory baselines, care source, ONNX model) and the evaluation policy.
 * Then leaves each misuse kind out of training in turn and tests on that kind alone.
 */
export async function runEvaluation(write: (line: string) => void): Promise<void> {
  const trainingSet = await buildTrainingSet(DEFAULT_TRAINING);
  const trained = fitModel(trainingSet, DEFAULT_TRAINING);
  write(`training: seed ${DEFAULT_TRAINING.seed}, ${DEFAULT_TRAINING.days} days, ${trainingSet.records.length} records`);

  const test = simulateTraffic({
    seed: EVALUATION.testSeed,
    days: EVALUATION.testDays,
    prefix: 't-',
    start: SIMULATION_START + (DEFAULT_TRAINING.days + 7) * DAY,
  });
  const scored = await scoreThroughScorer(trained.model, test.records, test.panel);
  write(`test: seed ${EVALUATION.testSeed}, ${EVALUATION.testDays} days, scored from day ${EVALUATION.scoredFromDay}, ${scored.length} records`);

  write(`all ${formatSummary(summarize(scored.map(toDecision)))}`);
  for (const role of ROLES) {
    write(`role=${role} ${formatSummary(summarize(scored.filter(({ record }) => record.role === role).map(toDecision)))}`);
  }
  for (const kind of MISUSE_KINDS) {
    const subset = scored.filter(({ record }) => record.label === 'benign' || record.kind === kind);
    write(`kind=${kind} ${formatSummary(summarize(subset.map(toDecision)))}`);
  }

  for (const kind of MISUSE_KINDS) {
    const withoutKind = fitModel(trainingSet, DEFAULT_TRAINING, kind);
    const model = await createRiskModel(withoutKind.model, `without-${kind}`);
    const subset = scored.filter(({ record }) => record.label === 'benign' || record.kind === kind);
    const risks = await model.run(subset.map(({ row }) => row));
    await model.close();
    const decisions = subset.map(({ record }, index) => toDecision({ record, risk: risks[index]!, row: subset[index]!.row }));
    write(`left_out=${kind} ${formatSummary(summarize(decisions))}`);
  }
}

async function scoreThroughScorer(model: Uint8Array, records: readonly SimulatedRequest[], panel: Parameters<typeof panelCareSource>[0]): Promise<ScoredRecord[]> {
  const directory = mkdtempSync(join(tmpdir(), 'wardgate-eval-'));
  const modelPath = join(directory, 'model.onnx');
  writeFileSync(modelPath, model);
  const patientKey = simulationPatientKey(EVALUATION.testSeed);
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

function toDecision({ record, risk }: ScoredRecord): LabelledDecision {
  return {
    time: record.input.time,
    user: record.input.user,
    action: evaluationAction(risk),
    label: record.label,
    ...(record.episode === undefined ? {} : { episode: record.episode }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  await runEvaluation((line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`evaluation took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}
