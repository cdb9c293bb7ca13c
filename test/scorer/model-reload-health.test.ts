import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { FEATURE_SCHEMA } from '../../scorer/features/schema.ts';
import { encodeLogisticModel } from '../../scorer/model/onnx-writer.ts';
import { Browser, rawRequest, signIn, startTestStack } from '../e2e/support.ts';

const MODEL_PATH = new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname;
const WIDTH = FEATURE_SCHEMA.names.length;

function constantModel(bias: number): Uint8Array {
  return encodeLogisticModel({
    featureNames: FEATURE_SCHEMA.names,
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: `health-test-${bias}`,
    explanation: { kind: 'logistic', means: Array(WIDTH).fill(0), scales: Array(WIDTH).fill(1), weights: Array(WIDTH).fill(0), bias },
    trainingSummary: {},
  });
}

async function health(stack: Parameters<typeof rawRequest>[0]) {
  const response = await rawRequest(stack, '/.wardgate/health');
  return JSON.parse(response.body) as { model: { version: string; last_reload_error: string | null } };
}

/** Polls for up to 30 s of wall time: the file watcher is slow on a loaded machine. */
async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('condition not met within 30 s');
}

t.test('health shows the reloaded model and the last reload error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-health-'));
  const modelFile = join(dir, 'model.onnx');
  copyFileSync(MODEL_PATH, modelFile);
  const stack = await startTestStack({ modelFile, scorer: { deadline_ms: 2000, reload_poll_ms: 20 } });
  t.teardown(async () => {
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const first = await health(stack);
  t.match(first.model.version, /^.+@sha256:[0-9a-f]{12}$/);
  t.equal(first.model.last_reload_error, null);

  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  t.equal((await browser.request(`${stack.url}/fhir/Patient/p-0001`)).status, 200, 'a request is scored through the runner');

  writeFileSync(modelFile, 'not an onnx model');
  await t.resolves(waitFor(async () => (await health(stack)).model.last_reload_error !== null));
  const broken = await health(stack);
  t.equal(broken.model.version, first.model.version, 'the previous model stays in force');
  t.match(broken.model.last_reload_error, /^Invalid model/);

  writeFileSync(join(dir, 'next.tmp'), constantModel(-5));
  renameSync(join(dir, 'next.tmp'), modelFile);
  await t.resolves(waitFor(async () => (await health(stack)).model.version.startsWith('health-test--5@')));
  t.equal((await health(stack)).model.last_reload_error, null);
  t.equal((await browser.request(`${stack.url}/fhir/Patient/p-0002`)).status, 200);
  const span = stack.spans.getFinishedSpans().filter((candidate) => candidate.attributes['wardgate.model.version'] !== undefined).at(-1);
  t.match(span?.attributes['wardgate.model.version'], /^health-test--5@sha256:/, 'the span names the new model');
});
