import path from 'node:path';
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { verifyAuditDir } from '../../proxy/audit/verify.ts';
import { readTrustedPublicKeys, KEY_FILES, loadOrCreateSigningKeys } from '../../proxy/audit/keys.ts';
import { appendDecisions, copyTrail, linesOfKind, openTestTrail, readLines, temporaryDir, trailFiles, verify, waitForSeq, writeLines } from './helpers.ts';

// One trail of three files (one per day), each with a header, ten decisions and a signed
// checkpoint, written once and copied for every tamper case.
const original = temporaryDir('tamper');
t.teardown(original.remove);

t.before(async () => {
  const clock = { now: Date.parse('2026-03-01T10:00:00Z') };
  const trail = await openTestTrail(original.dir, { checkpointEvery: 10, now: () => clock.now });
  for (let day = 0; day < 3; day++) {
    clock.now = Date.parse('2026-03-01T10:00:00Z') + day * 86_400_000;
    appendDecisions(trail, 10, day * 10);
    await waitForSeq(trail, (day + 1) * 12);
  }
  await trail.close();
});

async function tampered(t: Test, label: string, change: (dir: string, files: string[]) => void) {
  const copy = copyTrail(original.dir, label);
  t.teardown(copy.remove);
  const files = trailFiles(copy.dir).map((name) => path.join(copy.dir, name));
  change(copy.dir, files);
  return { report: await verify(copy.dir), files };
}

t.test('untouched trail verifies clean', async (t) => {
  const report = await verify(original.dir);
  t.same(report.findings, []);
  t.equal(report.files, 3);
  t.equal(report.records, 12 + 12 + 13);
  t.equal(report.checkpoints, 4);
});

t.test('edited record is named', async (t) => {
  const { report, files } = await tampered(t, 'edit', (_dir, files) => {
    const lines = readLines(files[0]!);
    const line = linesOfKind(files[0]!, 'decision')[2]!;
    lines[line - 1] = lines[line - 1]!.replace('"action":"allow"', '"action":"block"');
    writeLines(files[0]!, lines);
  });
  const line = linesOfKind(files[0]!, 'decision')[2]!;
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_EDITED');
  t.equal(report.findings[0]?.file, files[0]);
  t.equal(report.findings[0]?.line, line);
});

t.test('dropped record is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'drop', (_dir, files) => {
    const lines = readLines(files[1]!);
    line = linesOfKind(files[1]!, 'decision')[4]!;
    lines.splice(line - 1, 1);
    writeLines(files[1]!, lines);
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_DROPPED');
  t.equal(report.findings[0]?.file, files[1]);
  t.equal(report.findings[0]?.line, line, 'names the record that now follows the gap');
  t.match(report.findings[0]?.message, /^record seq \d+ is missing before this record: it was dropped$/, 'one record is named in the singular');
});

t.test('inserted record is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'insert', (_dir, files) => {
    const lines = readLines(files[0]!);
    line = linesOfKind(files[0]!, 'decision')[3]!;
    const forged = JSON.parse(lines[line - 1]!);
    forged.trace_id = 'forged';
    lines.splice(line, 0, JSON.stringify(forged));
    writeLines(files[0]!, lines);
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_INSERTED');
  t.equal(report.findings[0]?.file, files[0]);
  t.equal(report.findings[0]?.line, line + 1);
});

t.test('reordered records are named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'reorder', (_dir, files) => {
    const lines = readLines(files[2]!);
    line = linesOfKind(files[2]!, 'decision')[5]!;
    [lines[line - 1], lines[line]] = [lines[line]!, lines[line - 1]!];
    writeLines(files[2]!, lines);
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_REORDERED');
  t.equal(report.findings[0]?.file, files[2]);
  t.equal(report.findings[0]?.line, line);
});

t.test('truncated file is named', async (t) => {
  let keptLines = 0;
  const { report, files } = await tampered(t, 'truncate', (_dir, files) => {
    const lines = readLines(files[0]!);
    keptLines = lines.length - 3;
    writeLines(files[0]!, lines.slice(0, keptLines));
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_FILE_TRUNCATED');
  t.equal(report.findings[0]?.file, files[0]);
  t.equal(report.findings[0]?.line, keptLines + 1, 'names the first line that is gone');
});

t.test('removed file is named', async (t) => {
  const { report, files } = await tampered(t, 'remove', (_dir, files) => rmSync(files[1]!));
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_FILE_MISSING');
  t.equal(report.findings[0]?.file, files[2]);
  t.match(report.findings[0]?.message, path.basename(files[1]!));
});

t.test('removed first file is named', async (t) => {
  const { report, files } = await tampered(t, 'remove-first', (_dir, files) => rmSync(files[0]!));
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_FILE_MISSING');
  t.equal(report.findings[0]?.file, files[1]);
});

t.test('truncated tail after the last checkpoint is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'tail', (_dir, files) => {
    const last = files[files.length - 1]!;
    const lines = readLines(last);
    line = lines.length;
    writeLines(last, lines.slice(0, -1));
  });
  t.equal(report.findings.length, 2, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_UNSIGNED_TAIL');
  t.equal(report.findings[0]?.file, files[files.length - 1]);
  t.equal(report.findings[1]?.code, 'WG_AUDIT_FILE_TRUNCATED', 'the head state file records the cut checkpoint');
  t.equal(report.findings[1]?.file, files[files.length - 1]);
  t.equal(report.findings[1]?.line, line);
  t.match(report.findings[1]?.message, /record seq 37 was cut/);
});

t.test('removed last file is named', async (t) => {
  const { report, files } = await tampered(t, 'remove-last', (_dir, files) => rmSync(files[files.length - 1]!));
  t.equal(report.findings.length, 2, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_UNSIGNED_TAIL');
  t.equal(report.findings[0]?.file, files[files.length - 2]);
  t.equal(report.findings[1]?.code, 'WG_AUDIT_FILE_MISSING', 'the head state file records the removed file');
  t.equal(report.findings[1]?.file, files[files.length - 1]);
});

t.test('forged checkpoint signature is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'signature', (_dir, files) => {
    const last = files[files.length - 1]!;
    const lines = readLines(last);
    line = lines.length;
    const checkpoint = JSON.parse(lines[line - 1]!);
    checkpoint.signatures.ed25519 = Buffer.from(new Uint8Array(64).fill(1)).toString('base64url');
    lines[line - 1] = JSON.stringify(checkpoint);
    writeLines(last, lines);
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_SIGNATURE_INVALID');
  t.equal(report.findings[0]?.file, files[files.length - 1]);
  t.equal(report.findings[0]?.line, line);
  t.match(report.findings[0]?.message, /Ed25519 signature does not verify/);
});

t.test('unacknowledged torn line is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'torn', (_dir, files) => {
    const last = files[files.length - 1]!;
    line = readLines(last).length + 1;
    appendFileSync(last, '{"seq":9');
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_TORN_RECORD');
  t.equal(report.findings[0]?.file, files[files.length - 1]);
  t.equal(report.findings[0]?.line, line);
});

t.test('garbage line is named', async (t) => {
  const { report, files } = await tampered(t, 'garbage', (_dir, files) => {
    const lines = readLines(files[1]!);
    lines[2] = 'not json';
    writeLines(files[1]!, lines);
  });
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_INVALID');
  t.equal(report.findings[0]?.file, files[1]);
  t.equal(report.findings[0]?.line, 3);
});

t.test('duplicated record is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'duplicate', (_dir, files) => {
    const lines = readLines(files[1]!);
    line = linesOfKind(files[1]!, 'decision')[1]!;
    lines.splice(line, 0, lines[line - 1]!);
    writeLines(files[1]!, lines);
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_INSERTED');
  t.equal(report.findings[0]?.file, files[1]);
  t.equal(report.findings[0]?.line, line + 1);
});

t.test('records repeated after an invalid line are named', async (t) => {
  // A whole batch written again after a partial write: the torn start of a record glued to
  // the batch's first record, then the rest of the batch a second time.
  let first = 0;
  const { report, files } = await tampered(t, 'repeated', (_dir, files) => {
    const lines = readLines(files[1]!);
    first = linesOfKind(files[1]!, 'decision')[0]!;
    const [a, b, c, d] = lines.slice(first - 1, first + 3);
    lines.splice(first + 2, 0, d!.slice(0, 40) + a!, b!, c!);
    writeLines(files[1]!, lines);
  });
  const seq = (line: number) => JSON.parse(readLines(files[1]!)[line - 1]!).seq as number;
  t.same(report.findings.map((finding) => [finding.code, finding.line]), [
    ['WG_AUDIT_RECORD_INVALID', first + 3],
    ['WG_AUDIT_RECORD_INSERTED', first + 4],
    ['WG_AUDIT_RECORD_INSERTED', first + 5],
  ]);
  t.equal(report.findings[1]?.file, files[1]);
  t.match(report.findings[1]?.message, `a second record with seq ${seq(first + 1)} (kind decision) does not link to the chain`);
  t.match(report.findings[2]?.message, `record (seq ${seq(first + 2)}, kind decision) does not belong to the chain between seq ${seq(first + 2)} and seq ${seq(first + 6)}`);
});

t.test('wrongly typed seq is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'typed', (_dir, files) => {
    const lines = readLines(files[0]!);
    line = linesOfKind(files[0]!, 'decision')[0]!;
    const record = JSON.parse(lines[line - 1]!);
    record.seq = String(record.seq);
    lines[line - 1] = JSON.stringify(record);
    writeLines(files[0]!, lines);
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_INVALID');
  t.equal(report.findings[0]?.line, line);
});

t.test('edited checkpoint head is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'head', (_dir, files) => {
    const lines = readLines(files[2]!);
    line = lines.length;
    const checkpoint = JSON.parse(lines[line - 1]!);
    checkpoint.head_seq -= 1;
    lines[line - 1] = JSON.stringify(checkpoint);
    writeLines(files[2]!, lines);
  });
  t.same(report.findings.map((finding) => finding.code), ['WG_AUDIT_CHECKPOINT_MISMATCH', 'WG_AUDIT_SIGNATURE_INVALID', 'WG_AUDIT_UNSIGNED_TAIL']);
  t.ok(report.findings.slice(0, 2).every((finding) => finding.file === files[2] && finding.line === line));
});

t.test('untrusted keys are named', async (t) => {
  const other = temporaryDir('other-keys');
  t.teardown(other.remove);
  const keys = await loadOrCreateSigningKeys(other.dir);
  const report = await verifyAuditDir(original.dir, { trustedKeys: [keys.publicKeys] });
  t.ok(report.findings.length > 0);
  t.ok(report.findings.every((finding) => finding.code === 'WG_AUDIT_KEY_UNTRUSTED'), JSON.stringify(report.findings.map((f) => f.code)));
  t.same(await readTrustedPublicKeys(path.join(other.dir, KEY_FILES.publicKeys)), [keys.publicKeys]);
});

t.test('empty folder is a finding', async (t) => {
  const empty = temporaryDir('empty');
  t.teardown(empty.remove);
  writeFileSync(path.join(empty.dir, 'unrelated.txt'), 'x');
  const report = await verifyAuditDir(empty.dir, { trustedKeys: [] });
  t.equal(report.findings[0]?.code, 'WG_AUDIT_NO_FILES');
});

t.test('duplicate JSON key is named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'duplicate-key', (_dir, files) => {
    const lines = readLines(files[0]!);
    line = linesOfKind(files[0]!, 'decision')[1]!;
    // JSON.parse keeps the last "action" and "rule", so the hash is unchanged, but a reader that keeps the first reads "block".
    lines[line - 1] = `{"action":"block","rule":"forged",${lines[line - 1]!.slice(1)}`;
    writeLines(files[0]!, lines);
  });
  t.equal(report.findings.length, 1, JSON.stringify(report.findings));
  t.equal(report.findings[0]?.code, 'WG_AUDIT_RECORD_INVALID');
  t.equal(report.findings[0]?.file, files[0]);
  t.equal(report.findings[0]?.line, line);
  t.match(report.findings[0]?.message, /the key "action" twice/);
});

t.test('duplicate nested and escaped keys are named', async (t) => {
  let line = 0;
  const { report, files } = await tampered(t, 'duplicate-nested', (_dir, files) => {
    const lines = readLines(files[1]!);
    line = linesOfKind(files[1]!, 'decision')[0]!;
    lines[line - 1] = lines[line - 1]!.replace('"reasons":[]', '"reasons":[{"a":1,"\\u0061":2}]');
    writeLines(files[1]!, lines);
  });
  const invalid = report.findings.filter((finding) => finding.code === 'WG_AUDIT_RECORD_INVALID');
  t.equal(invalid.length, 1, JSON.stringify(report.findings));
  t.equal(invalid[0]?.file, files[1]);
  t.equal(invalid[0]?.line, line);
  t.match(invalid[0]?.message, /the key "reasons\.a" twice/);
});

t.test('folder in place of a trail file is named', async (t) => {
  const { report, files } = await tampered(t, 'folder', (_dir, files) => {
    rmSync(files[1]!);
    mkdirSync(files[1]!);
  });
  const unreadable = report.findings.filter((finding) => finding.code === 'WG_AUDIT_FILE_UNREADABLE');
  t.equal(unreadable.length, 1, JSON.stringify(report.findings));
  t.equal(unreadable[0]?.file, files[1]);
  t.match(unreadable[0]?.message, /is a folder, not a trail file/);
});
