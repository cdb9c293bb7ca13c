import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { recordHash } from '../../proxy/audit/canonical.ts';
import { appendDecisions, openTestTrail, readLines, temporaryDir, trailFiles, verify, writeLines } from './helpers.ts';

/** Runs the trail twice, as a start, SIGTERM, start, three requests and SIGTERM do. */
async function twoRuns(t: Test, label: string): Promise<string> {
  const { dir, remove } = temporaryDir(label);
  t.teardown(remove);
  const first = await openTestTrail(dir);
  await first.close();
  const second = await openTestTrail(dir);
  appendDecisions(second, 3);
  await second.close();
  return dir;
}

function headState(dir: string): { instance: string; seq: number; head_hash: string; file: number } {
  return JSON.parse(readFileSync(path.join(dir, 'audit-test1.head'), 'utf8'));
}

function records(file: string): Array<Record<string, unknown> & { seq: number; kind: string }> {
  return readLines(file).map((line) => JSON.parse(line));
}

t.test('head state records the last record at close', async (t) => {
  const dir = await twoRuns(t, 'head-close');
  const last = readLines(path.join(dir, 'audit-test1-000002.jsonl')).at(-1)!;
  const state = headState(dir);
  t.equal(state.instance, 'test1');
  t.equal(state.file, 2);
  t.equal(state.seq, JSON.parse(last).seq);
  t.equal(state.head_hash, recordHash(JSON.parse(last)));
  t.same((await verify(dir)).findings, []);
});

t.test('removed newest file is a finding', async (t) => {
  const dir = await twoRuns(t, 'head-remove');
  const removed = path.join(dir, 'audit-test1-000002.jsonl');
  rmSync(removed);

  const report = await verify(dir);
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_FILE_MISSING');
  t.equal(report.findings[0]?.file, removed);
  t.match(report.findings[0]?.message, /records seq 7 in audit-test1-000002\.jsonl, but the trail ends at seq 2/);
});

t.test('restart after a removed newest file writes a gap event', async (t) => {
  const dir = await twoRuns(t, 'head-restart');
  const recorded = headState(dir);
  rmSync(path.join(dir, 'audit-test1-000002.jsonl'));

  const third = await openTestTrail(dir);
  appendDecisions(third, 1);
  await third.close();

  t.same(trailFiles(dir), ['audit-test1-000001.jsonl', 'audit-test1-000003.jsonl'], 'the removed file index is not reused');
  const [header, gap] = records(path.join(dir, 'audit-test1-000003.jsonl'));
  t.equal(header?.kind, 'file_header');
  t.equal(header?.seq, recorded.seq + 1, 'no sequence number of the removed records is reused');
  t.equal(header?.prev, recorded.head_hash);
  t.equal(header?.previous_file, 'audit-test1-000002.jsonl');
  t.equal(gap?.kind, 'gap');
  t.equal(gap?.reason, 'records_missing');
  t.same(gap?.missing_files, ['audit-test1-000002.jsonl']);
  t.same(gap?.recorded_head, { seq: recorded.seq, hash: recorded.head_hash, file: 'audit-test1-000002.jsonl' });
  t.match(gap?.message, /records seq 3 to 7 are missing from the trail: audit-test1-000002\.jsonl was removed/);

  const report = await verify(dir);
  t.same(report.findings.map((finding) => finding.code), ['WG_AUDIT_FILE_MISSING'], JSON.stringify(report.findings));
  t.match(report.findings[0]?.message, /audit-test1-000002\.jsonl is missing/);
});

t.test('truncated newest file is a finding and a gap event', async (t) => {
  const dir = await twoRuns(t, 'head-truncate');
  const file = path.join(dir, 'audit-test1-000002.jsonl');
  const lines = readLines(file);
  // Cut the last decision and the final checkpoint; the remaining end looks like an unclean stop.
  writeLines(file, lines.slice(0, -2));

  const report = await verify(dir, true);
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_FILE_TRUNCATED');
  t.equal(report.findings[0]?.file, file);
  t.equal(report.findings[0]?.line, lines.length - 1);

  const next = await openTestTrail(dir);
  await next.close();
  const [header, gap] = records(path.join(dir, 'audit-test1-000003.jsonl'));
  t.equal(header?.seq, 8);
  t.equal(gap?.reason, 'records_missing');
  t.same(gap?.missing_files, []);
  t.match(gap?.message, /records seq 6 to 7 are missing from the trail: audit-test1-000002\.jsonl was truncated/);
  t.same((await verify(dir)).findings.map((finding) => finding.code), ['WG_AUDIT_FILE_TRUNCATED']);
});

t.test('all files removed leaves the head state', async (t) => {
  const dir = await twoRuns(t, 'head-all');
  rmSync(path.join(dir, 'audit-test1-000001.jsonl'));
  rmSync(path.join(dir, 'audit-test1-000002.jsonl'));

  const report = await verify(dir);
  t.same(report.findings.map((finding) => finding.code), ['WG_AUDIT_FILE_MISSING'], JSON.stringify(report.findings));
  t.equal(report.findings[0]?.file, path.join(dir, 'audit-test1-000001.jsonl'));
  t.match(report.findings[0]?.message, /the trail has no records and audit-test1-000001\.jsonl to audit-test1-000002\.jsonl are missing/);

  const next = await openTestTrail(dir);
  await next.close();
  t.same(trailFiles(dir), ['audit-test1-000003.jsonl']);
  t.equal(records(path.join(dir, 'audit-test1-000003.jsonl'))[1]?.reason, 'records_missing');
});

t.test('malformed head state is a finding and a gap event', async (t) => {
  const dir = await twoRuns(t, 'head-invalid');
  const headFile = path.join(dir, 'audit-test1.head');
  writeFileSync(headFile, '{"seq": "many"}');

  const report = await verify(dir);
  t.same(report.findings.map((finding) => finding.code), ['WG_AUDIT_HEAD_INVALID']);
  t.equal(report.findings[0]?.file, headFile);

  const next = await openTestTrail(dir);
  await next.close();
  const gap = records(path.join(dir, 'audit-test1-000003.jsonl'))[1];
  t.equal(gap?.reason, 'head_state_invalid');
  t.same((await verify(dir)).findings, [], 'the next run rewrites the head state');
});

t.test('edited head state seq names the head state file', async (t) => {
  const dir = await twoRuns(t, 'head-seq');
  const headFile = path.join(dir, 'audit-test1.head');
  const state = headState(dir);
  writeFileSync(headFile, JSON.stringify({ ...state, seq: state.seq - 2 }));

  const report = await verify(dir);
  t.same(report.findings.map((finding) => finding.code), ['WG_AUDIT_HEAD_INVALID'], 'no record is blamed');
  t.equal(report.findings[0]?.file, headFile);
  t.equal(report.findings[0]?.message, `the head state file records seq ${state.seq - 2} with the hash of seq ${state.seq}: the head state file was edited`);
});

t.test('missing head state is a note', async (t) => {
  const dir = await twoRuns(t, 'head-missing');
  rmSync(path.join(dir, 'audit-test1.head'));
  const report = await verify(dir);
  t.same(report.findings, []);
  t.same(report.notes.map((note) => note.code), ['WG_AUDIT_HEAD_MISSING']);
});
