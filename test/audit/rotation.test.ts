import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { recordHash } from '../../proxy/audit/canonical.ts';
import { appendDecisions, openTestTrail, readLines, temporaryDir, trailFiles, verify, waitForSeq } from './helpers.ts';

t.test('files rotate by size and the chain continues', async (t) => {
  const { dir, remove } = temporaryDir('size');
  t.teardown(remove);
  const maxFileBytes = 8192;
  const trail = await openTestTrail(dir, { maxFileBytes });
  appendDecisions(trail, 60);
  await trail.close();

  const files = trailFiles(dir);
  t.ok(files.length >= 3, `${files.length} files`);
  for (const [index, name] of files.entries()) {
    t.equal(name, `audit-test1-${String(index + 1).padStart(6, '0')}.jsonl`);
    const lines = readLines(path.join(dir, name));
    const header = JSON.parse(lines[0]!);
    t.equal(header.kind, 'file_header', `${name} starts with a header`);
    t.equal(header.file, index + 1);
    if (index === 0) continue;

    const previous = readLines(path.join(dir, files[index - 1]!));
    t.equal(header.prev, recordHash(JSON.parse(previous[previous.length - 1]!)), `${name} links to the last record of ${files[index - 1]}`);
    t.equal(header.previous_file, files[index - 1]);
    t.ok(statSync(path.join(dir, files[index - 1]!)).size <= maxFileBytes, `${files[index - 1]} stays within max_file_bytes`);
  }
  t.same((await verify(dir)).findings, []);
});

t.test('files rotate at midnight UTC of the injected clock', async (t) => {
  const { dir, remove } = temporaryDir('day');
  t.teardown(remove);
  const clock = { now: Date.parse('2026-05-10T23:59:58Z') };
  const trail = await openTestTrail(dir, { now: () => clock.now });
  appendDecisions(trail, 3);
  clock.now = Date.parse('2026-05-11T00:00:01Z');
  appendDecisions(trail, 2, 3);
  await trail.close();

  const files = trailFiles(dir);
  t.equal(files.length, 2);
  const first = readLines(path.join(dir, files[0]!)).map((line) => JSON.parse(line));
  const second = readLines(path.join(dir, files[1]!)).map((line) => JSON.parse(line));
  t.same(first.map((record) => record.kind), ['file_header', 'decision', 'decision', 'decision']);
  t.ok(first.every((record) => record.time.startsWith('2026-05-10')), 'first file holds the first day only');
  t.same(second.map((record) => record.kind), ['file_header', 'decision', 'decision', 'checkpoint']);
  t.ok(second.every((record) => record.time.startsWith('2026-05-11')), 'second file holds the second day only');
  t.equal(second[0].seq, first[first.length - 1].seq + 1, 'sequence numbers continue across files');
  t.same((await verify(dir)).findings, []);
});

t.test('checkpoints follow checkpoint_every', async (t) => {
  const { dir, remove } = temporaryDir('every');
  t.teardown(remove);
  const trail = await openTestTrail(dir, { checkpointEvery: 5 });
  for (let round = 0; round < 3; round++) {
    appendDecisions(trail, 5, round * 5);
    const target = trail.seq + 1;
    await waitForSeq(trail, target);
  }
  await trail.close();

  const records = readLines(path.join(dir, trailFiles(dir)[0]!)).map((line) => JSON.parse(line));
  const checkpoints = records.filter((record) => record.kind === 'checkpoint');
  t.equal(checkpoints.length, 4, 'three after five decisions each, one final');
  for (const checkpoint of checkpoints) {
    const head = records.find((record) => record.seq === checkpoint.head_seq);
    t.equal(checkpoint.head_hash, recordHash(head), `checkpoint at seq ${checkpoint.seq} signs the hash of seq ${checkpoint.head_seq}`);
    t.equal(typeof checkpoint.signatures.ed25519, 'string');
    t.equal(Buffer.from(checkpoint.signatures.ml_dsa_65, 'base64url').length, 3309, 'ML-DSA-65 signatures are 3309 bytes');
  }
  t.equal(checkpoints[3].final, true);
  t.same((await verify(dir)).findings, []);
});

t.test('write callback reports every record', async (t) => {
  const { dir, remove } = temporaryDir('onwrite');
  t.teardown(remove);
  const writes: Array<[number, number]> = [];
  const trail = await openTestTrail(dir, { onWrite: (latency, records) => writes.push([latency, records]) });
  appendDecisions(trail, 25);
  await trail.close();
  const written = writes.reduce((sum, [, records]) => sum + records, 0);
  t.equal(written, readFileSync(path.join(dir, trailFiles(dir)[0]!), 'utf8').trim().split('\n').length, 'every written record is reported once');
  t.ok(writes.every(([latency]) => latency >= 0), 'latencies are non-negative');
});

t.test('records appended during writes are all kept', async (t) => {
  const { dir, remove } = temporaryDir('interleave');
  t.teardown(remove);
  const trail = await openTestTrail(dir, { maxFileBytes: 16_384 });
  for (let round = 0; round < 40; round++) {
    appendDecisions(trail, 3, round * 3);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await trail.close();
  const records = trailFiles(dir).flatMap((name) => readLines(path.join(dir, name)).map((line) => JSON.parse(line)));
  t.same(records.map((record) => record.seq), records.map((_record, index) => index + 1), 'sequence numbers have no gap');
  t.equal(records.filter((record) => record.kind === 'decision').length, 120);
  t.same((await verify(dir)).findings, []);
});

t.test('checkpoint_interval signs a quiet trail', async (t) => {
  const { dir, remove } = temporaryDir('interval');
  t.teardown(remove);
  const trail = await openTestTrail(dir, { checkpointIntervalMs: 100 });
  appendDecisions(trail, 2);
  await waitForSeq(trail, 4);
  await trail.close();
  const kinds = readLines(path.join(dir, trailFiles(dir)[0]!)).map((line) => JSON.parse(line).kind);
  t.same(kinds, ['file_header', 'decision', 'decision', 'checkpoint', 'checkpoint']);
});
