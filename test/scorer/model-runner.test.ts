import { execFileSync } from 'node:child_process';
import { closeSync, constants, copyFileSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { dependencyOfScorerError } from '../../proxy/pipeline/fail-modes.ts';
import { FEATURE_SCHEMA } from '../../scorer/features/schema.ts';
import { createModelRunner } from '../../scorer/model/model-runner.ts';
import { encodeLogisticModel } from '../../scorer/model/onnx-writer.ts';
import { loadRiskModel, type RiskModel } from '../../scorer/model/risk-model.ts';

const MODEL_PATH = new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname;
const WIDTH = FEATURE_SCHEMA.names.length;

/** Deterministic, mostly quiet feature rows (a few values between 0 and 1), where the shipped model is not saturated. */
function rows(count: number): Float32Array[] {
  let state = 12345;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  return Array.from({ length: count }, () => Float32Array.from({ length: WIDTH }, () => (next() < 0.15 ? Math.round(next() * 10) / 10 : 0)));
}

function otherModel(bias: number): Uint8Array {
  return encodeLogisticModel({
    featureNames: FEATURE_SCHEMA.names,
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: `runner-test-${bias}`,
    explanation: { kind: 'logistic', means: Array(WIDTH).fill(0), scales: Array(WIDTH).fill(1), weights: Array(WIDTH).fill(0), bias },
    trainingSummary: { seed: 0 },
  });
}

/** Builds a model with the real model's metadata and a replaced run, to inject faults. */
async function faultyModel(run: RiskModel['run']): Promise<RiskModel> {
  const real = await loadRiskModel(MODEL_PATH);
  return { version: real.version, metadata: real.metadata, run, explain: (row) => real.explain(row), close: () => real.close() };
}

t.test('concurrent calls are batched with the same risks', async (t) => {
  const single = await loadRiskModel(MODEL_PATH);
  t.teardown(() => single.close());
  const runner = await createModelRunner({ path: MODEL_PATH, pollMs: 0, batchMax: 32, batchWaitUs: 2000, deadlineMs: 10_000 });
  t.teardown(() => runner.close());
  const inputs = rows(64);

  const expected: number[] = [];
  for (const row of inputs) expected.push((await single.run([row]))[0]!);
  const batched = await Promise.all(inputs.map(async (row) => (await runner.run([row]))[0]!));

  t.equal(batched.length, 64);
  batched.forEach((risk, index) => t.ok(Math.abs(risk - expected[index]!) < 1e-6, `row ${index}: ${risk} equals ${expected[index]}`));
  t.ok(new Set(expected.map((risk) => risk.toFixed(3))).size > 1, 'the rows do not all get the same risk');
  t.equal(runner.stats().rows, 64);
  t.ok(runner.stats().runs <= 4, `64 calls took ${runner.stats().runs} model runs`);
  t.ok(runner.stats().runs >= 2, 'no batch is larger than batchMax');
});

t.test('batch of one without waiting', async (t) => {
  const runner = await createModelRunner({ path: MODEL_PATH, pollMs: 0, batchMax: 1, batchWaitUs: 0 });
  t.teardown(() => runner.close());

  const [risk] = await runner.run(rows(1));
  t.ok(risk! >= 0 && risk! <= 1);
  t.same(runner.stats(), { runs: 1, rows: 1 });
});

t.test('a hanging model makes the call reject at the deadline', async (t) => {
  const runner = await createModelRunner({ path: MODEL_PATH, pollMs: 0, deadlineMs: 50, load: () => faultyModel(() => new Promise(() => {})) });
  t.teardown(() => runner.close());

  const error = await runner.run(rows(1)).then(() => null, (failure: unknown) => failure);
  t.match(error, { code: 'WG_SCORER_INFERENCE_FAILED', status: 500, detail: { reason: 'deadline', deadline_ms: 50 } });
  t.match(error, { message: /^Model inference timed out after 50 ms \(scorer\.deadline_ms\)/ });
  t.equal(dependencyOfScorerError(error), 'scorer', 'the route fail mode for the scorer applies');
});

t.test('a throwing model makes every call of the batch reject', async (t) => {
  const runner = await createModelRunner({ path: MODEL_PATH, pollMs: 0, batchWaitUs: 2000, load: () => faultyModel(async () => { throw new Error('session exploded'); }) });
  t.teardown(() => runner.close());

  const results = await Promise.allSettled(rows(3).map((row) => runner.run([row])));
  for (const result of results) {
    t.equal(result.status, 'rejected');
    t.match((result as PromiseRejectedResult).reason, { code: 'WG_SCORER_INFERENCE_FAILED', message: 'Model inference failed: session exploded.' });
  }
  t.equal(runner.stats().runs, 1);
});

t.test('a replaced model file is picked up, a broken one is not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-runner-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'model.onnx');
  copyFileSync(MODEL_PATH, file);
  const reloads: string[] = [];
  const failures: Error[] = [];
  const runner = await createModelRunner({ path: file, pollMs: 20, onReload: (version) => reloads.push(version), onReloadError: (error) => failures.push(error) });
  t.teardown(() => runner.close());
  const original = runner.version;

  writeFileSync(join(dir, 'next.tmp'), otherModel(3));
  renameSync(join(dir, 'next.tmp'), file);
  await t.resolves(waitFor(() => reloads.length === 1));
  t.match(runner.version, /^runner-test-3@sha256:/);
  t.not(runner.version, original);
  t.equal(runner.lastReloadError(), null);
  const [risk] = await runner.run(rows(1));
  t.ok(Math.abs(risk! - 1 / (1 + Math.exp(-3))) < 1e-5, 'the new model answers');

  const bytes = otherModel(-3);
  writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await t.resolves(waitFor(() => failures.length >= 1));
  t.match(runner.version, /^runner-test-3@sha256:/, 'a half-written file leaves the model in force');
  t.match(failures[0], { code: 'WG_SCORER_MODEL_INVALID' });
  t.equal(runner.lastReloadError(), failures.at(-1)!.message);

  const mismatching = encodeLogisticModel({
    featureNames: [...FEATURE_SCHEMA.names.slice(0, -1), 'something_else'],
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: 'mismatch',
    explanation: { kind: 'logistic', means: Array(WIDTH).fill(0), scales: Array(WIDTH).fill(1), weights: Array(WIDTH).fill(0), bias: 0 },
    trainingSummary: {},
  });
  const before = failures.length;
  writeFileSync(join(dir, 'next.tmp'), mismatching);
  renameSync(join(dir, 'next.tmp'), file);
  await t.resolves(waitFor(() => failures.length > before && failures.at(-1)!.message.includes('something_else')));
  t.match(failures.at(-1), { code: 'WG_SCORER_MODEL_SCHEMA_MISMATCH' });
  t.match(runner.version, /^runner-test-3@sha256:/, 'a mismatching model is not put in force');

  writeFileSync(join(dir, 'next.tmp'), readFileSync(MODEL_PATH));
  renameSync(join(dir, 'next.tmp'), file);
  await t.resolves(waitFor(() => reloads.length === 2));
  t.equal(runner.version, original);
  t.equal(runner.lastReloadError(), null, 'a good reload clears the error');
});

t.test('a FIFO in place of the model file is rejected', { skip: process.platform === 'win32' && 'no FIFOs' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-runner-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'model.onnx');
  copyFileSync(MODEL_PATH, file);
  const reloads: string[] = [];
  const failures: Error[] = [];
  const runner = await createModelRunner({ path: file, pollMs: 20, onReload: (version) => reloads.push(version), onReloadError: (error) => failures.push(error) });
  t.teardown(() => runner.close());
  const original = runner.version;

  rmSync(file);
  execFileSync('mkfifo', [file]);
  t.teardown(() => releaseReader(file));
  await t.resolves(waitFor(() => failures.length === 1), 'the reload of the FIFO fails without waiting for a writer');
  t.match(failures[0], {
    code: 'WG_SCORER_MODEL_NOT_FOUND',
    message: `Invalid option modelPath: ${file} is a FIFO, not a regular file. Point modelPath at a regular file and replace it by rename.`,
  });
  t.equal(runner.version, original, 'the previous model stays in force');

  rmSync(file);
  writeFileSync(join(dir, 'next.tmp'), otherModel(2));
  renameSync(join(dir, 'next.tmp'), file);
  await t.resolves(waitFor(() => reloads.length === 1), 'a regular file is loaded again');
  t.match(runner.version, /^runner-test-2@sha256:/);
  t.equal(runner.lastReloadError(), null);
});

t.test('runner rejects invalid options', async (t) => {
  await t.rejects(createModelRunner({ path: MODEL_PATH, batchMax: 0 }), { code: 'WG_SCORER_INVALID_OPTION', message: 'Invalid option batchMax: expected a whole number from 1 to 4096, received 0.' });
  await t.rejects(createModelRunner({ path: MODEL_PATH, deadlineMs: 1.5 }), { code: 'WG_SCORER_INVALID_OPTION', message: /Invalid option deadlineMs/ });
  await t.rejects(createModelRunner({ path: '/nonexistent/model.onnx' }), { code: 'WG_SCORER_MODEL_NOT_FOUND' });
});

/** Polls for up to 30 s of wall time: the file watcher is slow on a loaded machine. */
async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error('condition not met within 30 s');
}

/** Opens the FIFO's write end and closes it, so that a reader waiting in open() returns. */
function releaseReader(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // ENXIO: no reader is waiting. ENOENT: the FIFO is gone.
  }
}
