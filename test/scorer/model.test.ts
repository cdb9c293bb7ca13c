import { randomBytes } from 'node:crypto';

import t from 'tap';

import { FEATURE_SCHEMA } from '../../scorer/features/schema.ts';
import { decodeModelMetadata } from '../../scorer/model/metadata.ts';
import { encodeLogisticModel, type LogisticModelSpec } from '../../scorer/model/onnx-writer.ts';
import { onnx } from '../../scorer/model/onnx-proto.ts';
import { createRiskModel, loadRiskModel } from '../../scorer/model/risk-model.ts';

const WIDTH = FEATURE_SCHEMA.names.length;

function spec(featureNames: readonly string[] = FEATURE_SCHEMA.names): LogisticModelSpec {
  return {
    featureNames,
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: 'test-model',
    explanation: {
      kind: 'logistic',
      means: Array(featureNames.length).fill(0),
      scales: Array(featureNames.length).fill(1),
      weights: featureNames.map((_, i) => (i === 6 ? 2 : 0)),
      bias: -1,
    },
    trainingSummary: { seed: 0 },
  };
}

t.test('model with a renamed feature is rejected', async (t) => {
  const names: string[] = [...FEATURE_SCHEMA.names];
  names[4] = 'network_is_new';

  await t.rejects(createRiskModel(encodeLogisticModel(spec(names)), 'renamed.onnx'), {
    code: 'WG_SCORER_MODEL_SCHEMA_MISMATCH',
    detail: { position: 4, expected: 'network_new_for_user', found: 'network_is_new' },
    message:
      `Model renamed.onnx does not match feature schema ${FEATURE_SCHEMA.version}: at position 4 expected "network_new_for_user", ` +
      'found "network_is_new". Retrain the model with npm run train.',
  });
});

t.test('model with a missing last feature is rejected', async (t) => {
  const names = FEATURE_SCHEMA.names.slice(0, -1);

  await t.rejects(createRiskModel(encodeLogisticModel(spec(names)), 'short.onnx'), {
    code: 'WG_SCORER_MODEL_SCHEMA_MISMATCH',
    detail: { position: WIDTH - 1, expected: FEATURE_SCHEMA.names[WIDTH - 1], found: null },
  });
});

t.test('model with an extra feature is rejected', async (t) => {
  const names = [...FEATURE_SCHEMA.names, 'extra'];

  await t.rejects(createRiskModel(encodeLogisticModel(spec(names)), 'long.onnx'), {
    code: 'WG_SCORER_MODEL_SCHEMA_MISMATCH',
    detail: { position: WIDTH, expected: null, found: 'extra' },
  });
});

t.test('matching model runs in onnxruntime', async (t) => {
  const model = await createRiskModel(encodeLogisticModel(spec()), 'ok.onnx');
  t.teardown(() => model.close());

  const zero = new Float32Array(WIDTH);
  const row = new Float32Array(WIDTH);
  row[6] = 1;
  const risks = await model.run([zero, row]);

  t.equal(risks.length, 2);
  t.equal(risks[0]!.toFixed(5), (1 / (1 + Math.exp(1))).toFixed(5));
  t.equal(risks[1]!.toFixed(5), (1 / (1 + Math.exp(-1))).toFixed(5));
  t.match(model.version, /^test-model@sha256:[0-9a-f]{12}$/);
  t.same(model.explain(row)[0], { name: FEATURE_SCHEMA.names[6], value: 1, contribution: 2 });
});

t.test('missing model file is a coded error', async (t) => {
  await t.rejects(loadRiskModel('/nonexistent/wardgate/model.onnx'), { code: 'WG_SCORER_MODEL_NOT_FOUND', detail: { option: 'modelPath' } });
});

t.test('metadata decoder rejects hostile files', async (t) => {
  const good = encodeLogisticModel(spec());
  const cases: [string, Uint8Array][] = [
    ['empty file', new Uint8Array(0)],
    ['truncated file', good.subarray(0, Math.floor(good.byteLength / 2))],
    ['one byte', Uint8Array.of(0x0a)],
    ['random bytes', randomBytes(4096)],
    ['oversized file', new Uint8Array(64 * 1024 * 1024 + 1)],
  ];

  for (const [name, bytes] of cases) {
    t.throws(() => decodeModelMetadata(bytes, name), { code: 'WG_SCORER_MODEL_INVALID', status: 500 }, name);
  }
});

t.test('metadata decoder rejects malformed metadata', async (t) => {
  const withProps = (props: { key: string; value: string }[]): Uint8Array =>
    onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, metadataProps: props })).finish();
  const names = JSON.stringify(FEATURE_SCHEMA.names);
  const version = { key: 'wardgate.feature_schema_version', value: FEATURE_SCHEMA.version };
  const cases: [string, { key: string; value: string }[], RegExp][] = [
    ['no metadata', [], /wardgate\.feature_names is missing/],
    ['duplicated key', [{ key: 'wardgate.feature_names', value: names }, { key: 'wardgate.feature_names', value: names }, version], /twice/],
    ['names not JSON', [{ key: 'wardgate.feature_names', value: '[oops' }, version], /not valid JSON/],
    ['names wrongly typed', [{ key: 'wardgate.feature_names', value: '{"a":1}' }, version], /non-empty JSON array of strings/],
    ['numbers as names', [{ key: 'wardgate.feature_names', value: '[1,2]' }, version], /non-empty JSON array of strings/],
    ['missing version', [{ key: 'wardgate.feature_names', value: names }], /feature_schema_version is missing/],
    [
      'explanation of the wrong length',
      [{ key: 'wardgate.feature_names', value: names }, version, { key: 'wardgate.explanation', value: '{"kind":"logistic","means":[0],"scales":[1],"weights":[0],"bias":0}' }],
      /must be \{kind: "logistic"/,
    ],
  ];

  for (const [name, props, message] of cases) {
    t.throws(() => decodeModelMetadata(withProps(props), name), { code: 'WG_SCORER_MODEL_INVALID', message }, name);
  }
});

t.test('shipped model carries the training metadata', async (t) => {
  const model = await loadRiskModel(new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname);
  t.teardown(() => model.close());

  const summary = model.metadata.trainingSummary as {
    seed: number;
    records: { by_label: Record<string, number>; by_role: Record<string, number>; episodes_by_kind: Record<string, number> };
  };
  t.same(model.metadata.featureNames, FEATURE_SCHEMA.names);
  t.equal(model.metadata.schemaVersion, FEATURE_SCHEMA.version);
  t.equal(model.metadata.explanation?.kind, 'trees');
  t.equal(summary.seed, 1);
  t.ok(summary.records.by_label.benign! > 10_000, 'benign records counted');
  t.ok(summary.records.episodes_by_kind.stolen_account! > 0, 'stolen-account episodes counted');
  t.ok(summary.records.by_role.radiologist! > 0, 'radiologist records counted');
  t.match(model.version, /^risk-v4@sha256:[0-9a-f]{12}$/);
});

t.test('tree model runs and explains by path', async (t) => {
  const { encodeTreeModel } = await import('../../scorer/model/tree-writer.ts');
  // One tree: split on feature 7 at 2, then on feature 13 at 0.5 in the right branch.
  const nodes = [
    { feature: 7, threshold: 2, left: 1, right: 2, value: 0, cover: 10 },
    { feature: -1, threshold: 0, left: -1, right: -1, value: -2, cover: 6 },
    { feature: 13, threshold: 0.5, left: 3, right: 4, value: 1, cover: 4 },
    { feature: -1, threshold: 0, left: -1, right: -1, value: 0.5, cover: 2 },
    { feature: -1, threshold: 0, left: -1, right: -1, value: 3, cover: 2 },
  ];
  const bytes = encodeTreeModel({
    featureNames: FEATURE_SCHEMA.names,
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: 'tree-test',
    explanation: { kind: 'trees', base: -1, trees: [nodes] },
    trainingSummary: { seed: 0 },
  });
  const model = await createRiskModel(bytes, 'tree.onnx');
  t.teardown(() => model.close());

  const low = new Float32Array(WIDTH);
  const high = new Float32Array(WIDTH);
  high[7] = 5;
  high[13] = 1;
  const [lowRisk, highRisk] = await model.run([low, high]);

  t.equal(lowRisk!.toFixed(5), (1 / (1 + Math.exp(3))).toFixed(5), 'sigmoid(-1 - 2)');
  t.equal(highRisk!.toFixed(5), (1 / (1 + Math.exp(-2))).toFixed(5), 'sigmoid(-1 + 3)');
  const top = model.explain(high);
  t.same(top[0], { name: FEATURE_SCHEMA.names[13], value: 1, contribution: 2 }, 'second split adds 3 - 1');
  t.same(top[1], { name: FEATURE_SCHEMA.names[7], value: 5, contribution: 1 }, 'first split adds 1 - 0');
  t.equal(top.length, 3);
});

t.test('tree explanation with a bad child index is rejected', async (t) => {
  const { encodeTreeModel } = await import('../../scorer/model/tree-writer.ts');
  const bytes = encodeTreeModel({
    featureNames: FEATURE_SCHEMA.names,
    schemaVersion: FEATURE_SCHEMA.version,
    modelVersion: 'tree-test',
    explanation: { kind: 'trees', base: 0, trees: [[{ feature: 0, threshold: 1, left: 0, right: 9, value: 0, cover: 1 }]] },
    trainingSummary: {},
  });

  t.throws(() => decodeModelMetadata(bytes, 'bad-tree.onnx'), { code: 'WG_SCORER_MODEL_INVALID', message: /of kind "trees"/ });
});
