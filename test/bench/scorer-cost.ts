// The scorer's own cost per request for `npm run bench`: feature extraction plus inference,
// with the in-process baseline store so that no Redis round trip is counted. Measured once
// one call at a time (batch size 1) and once with many calls in flight, batched by the runner.
import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { createModelRunner } from '../../scorer/model/model-runner.ts';
import { createScorer } from '../../scorer/scorer.ts';
import type { ScoreInput } from '../../scorer/types.ts';

const MODEL_PATH = new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname;
const START = Date.UTC(2025, 2, 3, 8);

export interface ScorerCost {
  readonly label: string;
  readonly requests: number;
  /** Requests scored per second of wall time. */
  readonly rps: number;
  /** Wall time per request in microseconds (1e6 / rps). */
  readonly usPerRequest: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Mean rows per inference run. */
  readonly meanBatch: number;
}

/** Builds the i-th synthetic request: 50 users, a few hundred patients, one request per 100 ms. */
function input(i: number): ScoreInput {
  const user = i % 50;
  return {
    user: `user-${user}`,
    groups: ['clinicians', user % 2 === 0 ? 'physicians' : 'nurses'],
    time: START + i * 100,
    ip: `10.20.${user % 8}.${17 + (user % 40)}`,
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/133.0',
    method: 'GET',
    host: 'ehr.hospital.test',
    path: i % 3 === 0 ? `/fhir/Patient/p-${i % 400}` : `/fhir/Observation?patient=p-${i % 400}&category=vital-signs`,
    routeId: 'ehr',
    sensitivity: 'high',
  };
}

/** Scores `total` requests with `inFlight` calls at a time and returns the cost figures. */
export async function measureScorerCost(label: string, inFlight: number, total: number, batch: { batchMax: number; batchWaitUs: number }): Promise<ScorerCost> {
  const runner = await createModelRunner({ path: MODEL_PATH, pollMs: 0, deadlineMs: 60_000, ...batch });
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 7), model: runner });

  try {
    // Warm-up: fills the baselines and lets V8 and onnxruntime settle.
    for (let i = 0; i < 500; i++) await scorer.score(input(i));
    const warmStats = runner.stats();

    const latencies: number[] = [];
    let next = 500;
    const worker = async () => {
      while (next < 500 + total) {
        const request = input(next++);
        const started = process.hrtime.bigint();
        await scorer.score(request);
        latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
    };
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: inFlight }, worker));
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;

    latencies.sort((a, b) => a - b);
    const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    const stats = runner.stats();
    const rps = (latencies.length * 1000) / elapsedMs;

    return {
      label,
      requests: latencies.length,
      rps,
      usPerRequest: 1e6 / rps,
      p50Ms: quantile(0.5),
      p99Ms: quantile(0.99),
      meanBatch: (stats.rows - warmStats.rows) / Math.max(1, stats.runs - warmStats.runs),
    };
  } finally {
    await scorer.close();
  }
}

/** Prints the figures as a table, one line per setting. */
export function formatScorerCosts(costs: readonly ScorerCost[]): string {
  const lines = ['scorer (features + inference, in-process baselines)', 'setting                 req/s   us/req   p50 ms   p99 ms   mean batch'];
  for (const cost of costs) {
    lines.push(`${cost.label.padEnd(20)} ${cost.rps.toFixed(0).padStart(8)} ${cost.usPerRequest.toFixed(1).padStart(8)} ${cost.p50Ms.toFixed(3).padStart(8)} ${cost.p99Ms.toFixed(3).padStart(8)} ${cost.meanBatch.toFixed(1).padStart(12)}`);
  }

  return lines.join('\n');
}

/** Runs both settings: one call at a time, and 32 in flight batched up to 32 rows. */
export async function measureScorerCosts(total = Number(process.env.BENCH_SCORER_REQUESTS ?? 20_000)): Promise<ScorerCost[]> {
  return [
    await measureScorerCost('batch 1, 1 in flight', 1, total, { batchMax: 1, batchWaitUs: 0 }),
    await measureScorerCost('32 in flight', 32, total, { batchMax: 32, batchWaitUs: 200 }),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(formatScorerCosts(await measureScorerCosts()));
}
