import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { readLines, trailFiles } from './helpers.ts';
import { sendLoad, setUp, startWardgate, verifyCommand, type Child } from './wardgate-process.ts';

t.test('SIGKILL, restart and verify', async (t) => {
  const { auditDir, configFile, env, ca } = await setUp(t, 'kill', 'kill1');

  const first = await startWardgate(configFile, env);
  t.teardown(() => first.process.kill('SIGKILL'));
  const firstStatuses = await sendLoad(first.port, ca, 'pat-kill', 80);
  t.same([...new Set(firstStatuses)], [401], 'anonymous API requests are challenged');
  first.process.kill('SIGKILL');
  t.same(await first.exited, { code: null, signal: 'SIGKILL' });

  const second = await startWardgate(configFile, env);
  t.teardown(() => second.process.kill('SIGKILL'));
  await sendLoad(second.port, ca, 'pat-after', 10);
  second.process.kill('SIGTERM');
  t.same(await second.exited, { code: 0, signal: null }, 'the second run closes cleanly');

  const files = trailFiles(auditDir);
  t.ok(files.length >= 2, `${files.length} files`);
  const records = files.flatMap((name) => readLines(path.join(auditDir, name)).flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  }));
  const gap = records.find((record) => record.kind === 'gap');
  t.ok(gap, 'the second run records a gap event');
  t.equal(gap?.reason, 'unclean_shutdown');
  t.equal(typeof gap?.last_seen?.seq, 'number');
  const firstRun = records.filter((record) => record.kind === 'decision' && record.seq < gap.seq);
  const secondRun = records.filter((record) => record.kind === 'decision' && record.seq > gap.seq);
  t.ok(firstRun.length <= 80, `${firstRun.length} of 80 decisions of the killed run reached the disk`);
  t.equal(secondRun.length, 10, 'every request of the second run is recorded');

  const text = files.map((name) => readFileSync(path.join(auditDir, name), 'utf8')).join('');
  t.notMatch(text, /pat-kill-|pat-after-/, 'no patient id appears in clear');

  const { code, printed } = await verifyCommand(auditDir);
  t.equal(code, 0, printed);
  t.match(printed, /: intact\n$/);
});

t.test('removed newest file after SIGTERM', async (t) => {
  const { auditDir, configFile, env, ca } = await setUp(t, 'remove-newest', 'rm1');
  const stop = async (child: Child) => {
    child.process.kill('SIGTERM');
    t.same(await child.exited, { code: 0, signal: null }, 'the run closes cleanly');
  };

  const first = await startWardgate(configFile, env);
  t.teardown(() => first.process.kill('SIGKILL'));
  await stop(first);
  const second = await startWardgate(configFile, env);
  t.teardown(() => second.process.kill('SIGKILL'));
  await sendLoad(second.port, ca, 'pat-rm', 3);
  await stop(second);

  const removed = path.join(auditDir, 'audit-rm1-000002.jsonl');
  const removedRecords = readLines(removed).map((line) => JSON.parse(line));
  const lastSeq = removedRecords.at(-1).seq;
  rmSync(removed);
  const afterRemoval = await verifyCommand(auditDir);
  t.equal(afterRemoval.code, 1, afterRemoval.printed);
  t.match(afterRemoval.printed, `${removed}:0: WG_AUDIT_FILE_MISSING: the head state file records seq ${lastSeq} in audit-rm1-000002.jsonl`);

  const third = await startWardgate(configFile, env);
  t.teardown(() => third.process.kill('SIGKILL'));
  await stop(third);
  t.same(trailFiles(auditDir), ['audit-rm1-000001.jsonl', 'audit-rm1-000003.jsonl'], 'the removed file index is not reused');
  const [header, gap] = readLines(path.join(auditDir, 'audit-rm1-000003.jsonl')).map((line) => JSON.parse(line));
  t.equal(header.seq, lastSeq + 1, 'no sequence number of the removed records is reused');
  t.equal(gap.kind, 'gap');
  t.equal(gap.reason, 'records_missing');
  t.same(gap.missing_files, ['audit-rm1-000002.jsonl']);

  const afterRestart = await verifyCommand(auditDir);
  t.equal(afterRestart.code, 1, afterRestart.printed);
  t.match(afterRestart.printed, /audit-rm1-000003\.jsonl:1: WG_AUDIT_FILE_MISSING: audit-rm1-000002\.jsonl is missing before this file/);
});
