import t from 'tap';

import { createRiskModel } from '../../scorer/model/risk-model.ts';
import { toReplayRecord } from '../../scorer/training/replay-format.ts';
import { MISUSE_KINDS, simulateTraffic } from '../../scorer/training/simulator.ts';
import { buildTrainingSet, fitModel } from '../../scorer/training/train.ts';

const SMALL = { seed: 7, days: 4, scale: 0.4, boosting: { trees: 6, depth: 3 } };

t.test('training is deterministic for a seed', async (t) => {
  const set = await buildTrainingSet(SMALL);
  const first = fitModel(set, SMALL);
  const again = fitModel(await buildTrainingSet(SMALL), SMALL);
  const otherSeed = fitModel(await buildTrainingSet({ ...SMALL, seed: 8 }), { ...SMALL, seed: 8 });

  t.equal(Buffer.compare(Buffer.from(first.model), Buffer.from(again.model)), 0, 'same bytes');
  t.not(Buffer.compare(Buffer.from(first.model), Buffer.from(otherSeed.model)), 0, 'another seed differs');

  const model = await createRiskModel(first.model, 'small.onnx');
  t.teardown(() => model.close());
  t.equal((model.metadata.trainingSummary as { seed: number }).seed, 7);
  const risks = await model.run(set.rows.slice(0, 50));
  t.ok(risks.every((risk) => risk >= 0 && risk <= 1), 'risks in [0, 1]');
});

t.test('simulation is deterministic for a seed', async (t) => {
  const first = simulateTraffic({ seed: 3, days: 3, scale: 0.3 });
  const second = simulateTraffic({ seed: 3, days: 3, scale: 0.3 });

  t.same(first, second);
  t.not(JSON.stringify(simulateTraffic({ seed: 4, days: 3, scale: 0.3 }).records.slice(0, 20)), JSON.stringify(first.records.slice(0, 20)));
});

t.test('simulator labels every misuse kind and role', async (t) => {
  const { records, panel } = simulateTraffic({ seed: 3, days: 14, scale: 1, episodesPerDay: 8 });
  const kinds = new Set(records.map((record) => record.kind));
  const roles = new Set(records.map((record) => record.role));

  t.same([...kinds].sort(), ['normal', ...MISUSE_KINDS].sort());
  t.same([...roles].sort(), ['billing', 'clerk', 'nurse', 'physician', 'radiologist']);
  t.ok(records.every((record, i) => i === 0 || records[i - 1]!.input.time <= record.input.time), 'sorted by time');
  t.ok(records.every((record) => (record.label === 'misuse') === (record.episode !== undefined)), 'misuse records and only they carry an episode');
  const kindsOfEpisode = new Map<string, Set<string>>();
  for (const record of records) {
    if (record.episode !== undefined) kindsOfEpisode.set(record.episode, (kindsOfEpisode.get(record.episode) ?? new Set()).add(record.kind));
  }
  t.ok([...kindsOfEpisode.values()].every((set) => set.size === 1), 'one kind per episode');
  t.ok(records.some((record) => record.label === 'benign' && record.input.path.endsWith('$everything')), 'legitimate exports exist');
  t.ok(Object.keys(panel.practitioners).length > 0, 'panel lists practitioners');
  t.ok(Object.values(panel.patients).some((flags) => flags.vip), 'panel flags VIP patients');
  t.ok(Object.values(panel.patients).some((flags) => flags.employee), 'panel flags employee patients');
});

t.test('replay record has the replay fields', async (t) => {
  const { records } = simulateTraffic({ seed: 3, days: 2, scale: 0.3, episodesPerDay: 4 });
  const misuse = records.find((record) => record.label === 'misuse')!;
  const line = toReplayRecord(misuse);

  t.same(Object.keys(line).sort(), ['bytes', 'episode', 'groups', 'host', 'ip', 'kind', 'label', 'method', 'path', 'role', 'route', 'status', 'time', 'user', 'user_agent'].sort());
  t.equal(line.time, new Date(misuse.input.time).toISOString());
  t.equal(line.label, 'misuse');
  t.equal(line.episode, misuse.episode);
  t.equal(toReplayRecord(records.find((record) => record.label === 'benign')!).episode, undefined, 'benign lines carry no episode');
});

t.test('simulate command writes replay and panel files', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, readdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const directory = mkdtempSync(join(tmpdir(), 'wardgate-simulate-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  const script = new URL('../../scorer/training/simulate.ts', import.meta.url).pathname;
  const out = join(directory, 'traffic.jsonl');
  const panel = join(directory, 'panel.json');

  const ok = spawnSync(process.execPath, [script, '--out', out, '--panel', panel, '--days', '1', '--scale', '0.2', '--seed', '5'], { encoding: 'utf8' });
  const bad = spawnSync(process.execPath, [script, '--out', out, '--panel', panel, '--days', 'many'], { encoding: 'utf8' });
  const missing = spawnSync(process.execPath, [script, '--out', out], { encoding: 'utf8' });
  const unknown = spawnSync(process.execPath, [script, '--verbose'], { encoding: 'utf8' });
  const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8' });

  t.equal(ok.status, 0, ok.stderr);
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  t.ok(lines.length > 100, `${lines.length} lines`);
  t.ok(lines.every((line) => typeof line.time === 'string' && Array.isArray(line.groups) && typeof line.status === 'number'), 'lines have the replay fields');
  const parsed = JSON.parse(readFileSync(panel, 'utf8'));
  t.type(parsed.practitioners, 'object');
  t.type(parsed.patients, 'object');
  t.equal(bad.status, 2);
  t.equal(bad.stderr, 'Invalid option --days: expected an integer from 1 to 365, received "many".\n');
  t.equal(missing.status, 2);
  t.match(missing.stderr, /^Missing option --panel\./);
  t.equal(unknown.status, 2, 'an unknown option exits with status 2');
  t.match(unknown.stderr, /^Unknown option '--verbose'.*\nusage: npm run simulate -- --out FILE\.jsonl/s, 'with the message and the usage line, no stack trace');
  t.equal(help.status, 0, '--help exits with status 0');
  t.match(help.stdout, /^usage: npm run simulate -- --out FILE\.jsonl.*\n {2}--scale X .*\(default 1\)\n$/s, '--help prints the options with their defaults');
  t.equal(help.stderr, '');
  t.equal(typeof parsed.stays, 'object', 'the panel carries hospital stays');
  t.same(readdirSync(directory).sort(), ['panel.json', 'traffic.jsonl'], 'no temporary file is left behind');
});
