import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { recordHash } from '../../proxy/audit/canonical.ts';
import { openAuditTrail } from '../../proxy/audit/writer.ts';
import { appendDecisions, openTestTrail, PATIENT_KEY, readLines, temporaryDir, trailFiles, verify } from './helpers.ts';

t.test('clean restart continues the chain without a gap', async (t) => {
  const { dir, remove } = temporaryDir('clean');
  t.teardown(remove);
  const first = await openTestTrail(dir);
  appendDecisions(first, 3);
  await first.close();
  const second = await openTestTrail(dir);
  appendDecisions(second, 3, 3);
  await second.close();

  const files = trailFiles(dir);
  t.equal(files.length, 2, 'each run writes its own file');
  const kinds = readLines(path.join(dir, files[1]!)).map((line) => JSON.parse(line).kind);
  t.notOk(kinds.includes('gap'));
  t.same((await verify(dir)).findings, []);
});

t.test('unclean end and torn line produce a gap event', async (t) => {
  const { dir, remove } = temporaryDir('torn');
  t.teardown(remove);
  const first = await openTestTrail(dir);
  appendDecisions(first, 4);
  await first.flush();
  // The run stops here without close(), as after SIGKILL, and left half a line.
  const firstFile = path.join(dir, trailFiles(dir)[0]!);
  const lastRecord = JSON.parse(readLines(firstFile).at(-1)!);
  const size = readFileSync(firstFile).length;
  appendFileSync(firstFile, '{"kind":"decision","path":"/fhir/Pat');

  const second = await openTestTrail(dir);
  appendDecisions(second, 2, 4);
  await second.close();

  const files = trailFiles(dir);
  t.equal(files.length, 2);
  const records = readLines(path.join(dir, files[1]!)).map((line) => JSON.parse(line));
  t.equal(records[0].kind, 'file_header');
  t.equal(records[0].prev, recordHash(lastRecord), 'new file links to the last complete record');
  const gap = records[1];
  t.equal(gap.kind, 'gap');
  t.equal(gap.reason, 'unclean_shutdown');
  t.same(gap.last_seen, { seq: lastRecord.seq, hash: recordHash(lastRecord), kind: 'decision', time: lastRecord.time, file: files[0], line: 5 });
  t.same(gap.torn, { file: files[0], line: 6, offset: size, bytes: 36 });

  const report = await verify(dir);
  t.same(report.findings, [], 'the torn line is acknowledged');
  t.equal(report.notes[0]?.code, 'WG_AUDIT_TORN_RECORD');
  t.equal(report.notes[0]?.line, 6);
});

t.test('second process on the same instance is rejected', async (t) => {
  const { dir, remove } = temporaryDir('lock');
  t.teardown(remove);
  const trail = await openTestTrail(dir);
  t.teardown(() => trail.close());
  const lockFile = path.join(dir, 'audit-test1.lock');
  t.ok(existsSync(lockFile));
  // A lock naming a live process other than this one: the parent of the test process.
  writeFileSync(lockFile, String(process.ppid));
  await t.rejects(openTestTrail(dir), { code: 'WG_AUDIT_DIR_LOCKED', message: new RegExp(`Process ${process.ppid} already writes the audit trail of instance "test1"`) });
  writeFileSync(lockFile, String(process.pid));
});

t.test('invalid options are rejected with the option named', async (t) => {
  const { dir, remove } = temporaryDir('options');
  t.teardown(remove);
  const base = { dir, keyDir: path.join(dir, 'keys'), checkpointEvery: 10, checkpointIntervalMs: 1000, maxFileBytes: 65536, fsyncIntervalMs: 200, patientKey: PATIENT_KEY };
  await t.rejects(openAuditTrail({ ...base, instanceId: 'has-dash' }), { code: 'WG_AUDIT_INVALID_OPTION', message: /instance_id: expected 1 to 64 characters .* received "has-dash"/ });
  await t.rejects(openAuditTrail({ ...base, instanceId: 'ok', checkpointEvery: 0 }), { code: 'WG_AUDIT_INVALID_OPTION', message: /checkpoint_every/ });
  await t.rejects(openAuditTrail({ ...base, instanceId: 'ok', maxFileBytes: 10 }), { code: 'WG_AUDIT_INVALID_OPTION', message: /max_file_bytes/ });
});

t.test('half a key pair is rejected', async (t) => {
  const { dir, remove } = temporaryDir('keys');
  t.teardown(remove);
  const trail = await openTestTrail(dir);
  await trail.close();
  t.equal(statSync(path.join(dir, 'keys', 'ed25519.key.pem')).mode & 0o777, 0o600);
  t.equal(statSync(path.join(dir, 'keys', 'ml-dsa-65.seed')).mode & 0o777, 0o600);
  rmSync(path.join(dir, 'keys', 'ml-dsa-65.seed'));
  await t.rejects(openTestTrail(dir), { code: 'WG_AUDIT_KEY_INVALID', message: /ml-dsa-65.seed is missing while its partner exists/ });
});

t.test('folder in place of a trail file is rejected at start', async (t) => {
  const { dir, remove } = temporaryDir('eisdir');
  t.teardown(remove);
  const trail = await openTestTrail(dir);
  await trail.close();
  const folder = path.join(dir, 'audit-test1-000002.jsonl');
  mkdirSync(folder);
  await t.rejects(openTestTrail(dir), { code: 'WG_AUDIT_DIR_UNUSABLE', message: `Cannot read the audit file ${folder} (EISDIR); restore it or move it out of the audit folder, then start again.` });
  t.notOk(existsSync(path.join(dir, 'audit-test1.lock')), 'the lock is released');
});
