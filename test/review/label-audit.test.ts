import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { defaultInstanceId } from '../../proxy/audit/files.ts';
import { openAuditTrail } from '../../proxy/audit/writer.ts';
import { runCli } from '../../proxy/cli/commands.ts';
import { patternOf } from '../../proxy/review/entry.ts';
import { runReviewCommand, type ReviewCommandDependencies } from '../../proxy/review/cli.ts';
import { BenignPatterns, ReviewQueue } from '../../proxy/review/queue.ts';
import { deletePrefix, REDIS_URL, sampleEntry, testPrefix } from './helpers.ts';

// A label and its audit record go together: when the record cannot be written, the label
// must not stay behind, because a retry would then fail with "already labelled".
const CLI = fileURLToPath(new URL('../../proxy/cli/wardgate.ts', import.meta.url));
const INSTANCE = `review_${defaultInstanceId()}`.slice(0, 64);

const redis = new Redis(REDIS_URL);
const prefix = testPrefix();
const queue = new ReviewQueue(redis, { prefix, maxLength: 1000 });
const patterns = new BenignPatterns(redis, prefix);
t.teardown(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

function auditFolder(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'wgtest-label-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function review(argv: string[], deps: ReviewCommandDependencies = {}): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (chunk: Buffer) => (chunks.out += chunk.toString()));
  err.on('data', (chunk: Buffer) => (chunks.err += chunk.toString()));
  const code = await runReviewCommand(argv, out, err, deps);
  return { code, ...chunks };
}

/** Returns the `review_label` records in the trail files of `dir`. */
function labelRecords(dir: string): Array<Record<string, unknown>> {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.jsonl'))
    .flatMap((name) => readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => record.kind === 'review_label');
}

async function verifies(dir: string): Promise<{ code: number; err: string }> {
  const err = new PassThrough();
  let text = '';
  err.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { code: await runCli(['audit', 'verify', dir], new PassThrough(), err), err: text };
}

const misuse = (id: string, dir: string) => ['label', id, 'misuse', '--note', 'no care relationship', '--analyst', 'ana', '--redis', REDIS_URL, '--prefix', prefix, '--audit-dir', dir];

t.test('locked trail: nothing is labelled or revoked', async (t) => {
  const dir = auditFolder(t);
  const id = await queue.add(sampleEntry({ user: 'demo-locked' }));
  // The parent process (the test runner) is running, so the lock counts as held by another process.
  writeFileSync(join(dir, `audit-${INSTANCE}.lock`), String(process.ppid));
  const revoked: string[] = [];
  const revokeSessions = async (subject: string) => {
    revoked.push(subject);
    return 1;
  };

  const locked = await review([...misuse(id, dir), '--revoke'], { revokeSessions });

  t.equal(locked.code, 1);
  t.equal(locked.err, `wardgate: cannot open the audit trail: Process ${process.ppid} already writes the audit trail of instance "${INSTANCE}" in ${dir}. Nothing was labelled and no session was ended. Another review command holds the lock; run this command again when it has finished.\n`);
  t.same(revoked, [], 'no session was ended');
  t.equal((await queue.get(id)).label, undefined, 'the entry has no label');
  t.ok((await queue.pending('cli-test')).some((item) => item.id === id), 'the entry is still pending');

  rmSync(join(dir, `audit-${INSTANCE}.lock`));
  const retried = await review([...misuse(id, dir), '--revoke'], { revokeSessions });
  t.equal(retried.code, 0, retried.err);
  t.same(revoked, ['demo-locked']);
  t.match(labelRecords(dir), [{ entry_id: id, label: 'misuse', revoked_sessions: 1 }]);
});

t.test('audit folder that is a file: nothing is labelled', async (t) => {
  const file = join(auditFolder(t), 'not-a-folder');
  writeFileSync(file, '');
  const id = await queue.add(sampleEntry({ user: 'demo-file' }));

  const result = await review(misuse(id, file));

  t.equal(result.code, 1);
  t.equal(result.err, `wardgate: cannot open the audit trail: Cannot create the audit folder ${file} (EEXIST). Nothing was labelled. Point --audit-dir or audit.dir at a writable folder and run this command again.\n`);
  t.equal((await queue.get(id)).label, undefined, 'the entry has no label');
});

t.test('concurrent labels: each label has its record', async (t) => {
  const dir = auditFolder(t);
  const ids = [await queue.add(sampleEntry({ user: 'demo-a' })), await queue.add(sampleEntry({ user: 'demo-b' })), await queue.add(sampleEntry({ user: 'demo-c' }))];

  const runs = await Promise.all(
    ids.map(
      (id) =>
        new Promise<{ id: string; code: number | null; err: string }>((resolve) => {
          const child = spawn(process.execPath, [CLI, 'review', ...misuse(id, dir)], { stdio: ['ignore', 'ignore', 'pipe'] });
          let err = '';
          child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
          child.on('close', (code) => resolve({ id, code, err }));
        }),
    ),
  );

  const records = labelRecords(dir);
  for (const run of runs) {
    const label = (await queue.get(run.id)).label;
    const record = records.find((item) => item.entry_id === run.id);
    if (run.code === 0) {
      t.equal(label?.label, 'misuse', `${run.id} is labelled`);
      t.ok(record, `${run.id} has its audit record`);
    } else {
      t.equal(run.code, 1, run.err);
      t.match(run.err, /already writes the audit trail .*Nothing was labelled\./s, `${run.id} failed on the lock`);
      t.equal(label, undefined, `${run.id} has no label`);
      t.equal(record, undefined, `${run.id} has no audit record`);
      const retried = await review(misuse(run.id, dir));
      t.equal(retried.code, 0, `a retry of ${run.id} succeeds: ${retried.err}`);
    }
  }
  t.same(labelRecords(dir).map((record) => record.entry_id).sort(), [...ids].sort(), 'one record per entry');
  const verified = await verifies(dir);
  t.equal(verified.code, 0, verified.err);
});

t.test('unwritten audit record: the label is removed', async (t) => {
  const dir = auditFolder(t);
  const entry = sampleEntry({ user: 'demo-unwritten' });
  const id = await queue.add(entry);
  const benign = ['label', id, 'benign', '--note', 'ward round', '--analyst', 'ana', '--redis', REDIS_URL, '--prefix', prefix, '--audit-dir', dir];

  // The folder disappears after the lock was taken and before the first write, so the
  // trail cannot create its file.
  const failed = await review(benign, {
    openAuditTrail: async (options) => {
      const trail = await openAuditTrail(options);
      rmSync(dir, { recursive: true, force: true });
      return trail;
    },
  });

  t.equal(failed.code, 1);
  t.match(failed.err, new RegExp(`^wardgate: the audit record of the label of review entry ${id} could not be written \\((\\d+ audit record\\(s\\) could not be written to ${dir}|\\d+ audit records were not written before the close [^\\n]*disk of audit\\.dir before starting again)\\)\\. The label was removed again, so the entry is still unlabelled\\. Fix the cause and run this command again\\.\\n$`));
  t.equal((await queue.get(id)).label, undefined, 'the entry has no label');
  t.ok((await queue.pending('cli-test')).some((item) => item.id === id), 'the entry is still pending');
  t.equal(await patterns.isAccepted('demo-unwritten', patternOf('ehr', entry.top_features)), false, 'the pattern is not accepted');

  const retried = await review(benign);
  t.equal(retried.code, 0, retried.err);
  t.match(labelRecords(dir), [{ entry_id: id, label: 'benign' }]);
  t.equal(await patterns.isAccepted('demo-unwritten', patternOf('ehr', entry.top_features)), true);
});

t.test('failing audit port: the label is removed', async (t) => {
  const id = await queue.add(sampleEntry({ user: 'demo-port' }));
  const argv = ['label', id, 'misuse', '--note', 'no care relationship', '--analyst', 'ana', '--redis', REDIS_URL, '--prefix', prefix];

  const result = await review(argv, {
    audit: {
      append: () => {
        throw new Error('disk full');
      },
    },
  });

  t.equal(result.code, 1);
  t.match(result.err, new RegExp(`^wardgate: the audit record of the label of review entry ${id} could not be written \\(disk full\\)\\. The label was removed again`));
  t.equal((await queue.get(id)).label, undefined, 'the entry has no label');
});

t.test('label that cannot be removed is reported', async (t) => {
  const id = await queue.add(sampleEntry({ user: 'demo-stuck' }));
  const argv = ['label', id, 'misuse', '--note', 'no care relationship', '--analyst', 'ana', '--revoke', '--redis', REDIS_URL, '--prefix', prefix];

  const result = await review(argv, {
    audit: {
      append: () => {
        throw new Error('disk full');
      },
    },
    // A label that changed meanwhile is not deleted, so the command cannot undo this one.
    revokeSessions: async () => {
      await redis.set(`${prefix}review:label:${id}`, JSON.stringify({ entry_id: id, label: 'misuse', note: 'other', analyst: 'bob', labelled_at: 1 }));
      return 0;
    },
  });

  t.equal(result.code, 1, result.err);
  t.match(result.err, new RegExp(`^wardgate: the audit record of the label of review entry ${id} could not be written \\(disk full\\)\\. The label could not be removed \\(it was changed meanwhile\\), so it exists in Redis without its audit record\\.`));
  t.match(result.err, /0 session\(s\) of demo-stuck were ended already\./);
  t.match(result.err, new RegExp(`Check it with "wardgate review show ${id}", delete the Redis key ${prefix}review:label:${id} and run this command again\\.\\n$`));
});
