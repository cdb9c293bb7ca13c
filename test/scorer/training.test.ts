import t from 'tap';

import { createRiskModel } from '../../scorer/model/risk-model.ts';
import { simulateTraffic } from '../../scorer/training/simulator.ts';
import { trainModel } from '../../scorer/training/train.ts';

const SMALL = { seed: 7, trainDays: 3, evalDays: 1, scale: 0.3, iterations: 40 };

t.test('training is deterministic for a seed', async (t) => {
  const first = trainModel(SMALL);
  const second = trainModel(SMALL);
  const otherSeed = trainModel({ ...SMALL, seed: 8 });

  t.equal(Buffer.compare(Buffer.from(first.model), Buffer.from(second.model)), 0, 'same bytes');
  t.not(Buffer.compare(Buffer.from(first.model), Buffer.from(otherSeed.model)), 0, 'another seed differs');
});

t.test('trained model loads in onnxruntime', async (t) => {
  const { model: bytes } = trainModel(SMALL);
  const model = await createRiskModel(bytes, 'small.onnx');
  t.teardown(() => model.close());

  t.equal((model.metadata.trainingSummary as { seed: number }).seed, 7);
});

t.test('simulator labels every misuse kind', async (t) => {
  const records = simulateTraffic({ seed: 3, days: 6, scale: 0.3, episodesPerDay: 4 });
  const labels = new Set(records.map((record) => record.label));
  const roles = new Set(records.map((record) => record.role));

  t.same([...labels].sort(), ['bulk_export', 'normal', 'scraping', 'snooping', 'stolen_account']);
  t.same([...roles].sort(), ['billing', 'clerk', 'nurse', 'physician', 'radiologist']);
  t.ok(records.every((record, i) => i === 0 || records[i - 1]!.input.time <= record.input.time), 'sorted by time');
});
