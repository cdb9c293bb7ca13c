import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { waitUntil } from '../wait.ts';
import { readLines, temporaryDir, trailFiles, verify } from './helpers.ts';
import { getJson, sendLoad, setUp, startWardgate, withFileSizeLimit } from './wardgate-process.ts';

// A soft RLIMIT_FSIZE makes a write that crosses it write only the bytes below the limit and
// fail with EFBIG, which is how a partial write happens. util-linux `prlimit` sets it on a
// child process and lifts it again while the child runs.
const SKIP = spawnSync('prlimit', ['--version']).status === 0 ? false : 'needs util-linux prlimit';
const TRAIL_PROCESS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'trail-process.ts');
const FILE_LIMIT = 60 * 1024;

interface LogEntry {
  readonly level: number;
  readonly msg: string;
  readonly err?: { code?: string };
  readonly [field: string]: unknown;
}

interface Reply {
  readonly event: string;
  readonly seq?: number;
  readonly code?: string;
  readonly message?: string;
  readonly health?: { failed_writes: number; pending_records: number; dropped_records: number; last_error: string | null };
}

/** Starts trail-process.ts under a file size limit of `FILE_LIMIT` bytes, writing its trail to `dir`. */
async function startTrailProcess(t: Test, dir: string) {
  const child = spawn(...withFileSizeLimit(FILE_LIMIT, [TRAIL_PROCESS, dir]), { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logs: LogEntry[] = [];
  // A line that is not JSON, such as a crash report, is kept as the message of a level 0 entry.
  createInterface({ input: child.stderr! }).on('line', (line) => logs.push(line.startsWith('{') ? (JSON.parse(line) as LogEntry) : { level: 0, msg: line }));
  const replies: Reply[] = [];
  let waiting: (() => void) | null = null;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    replies.push(JSON.parse(line) as Reply);
    waiting?.();
  });
  let exitCode: number | null | undefined;
  exited.then((code) => {
    exitCode = code;
    waiting?.();
  });
  const next = async (): Promise<Reply> => {
    while (replies.length === 0) {
      if (exitCode !== undefined) throw new Error(`trail-process.ts exited with code ${exitCode}: ${logs.map((entry) => entry.msg).join('\n')}`);
      await new Promise<void>((resolve) => (waiting = resolve));
    }
    return replies.shift()!;
  };
  // After `close` the input ends, so that only a timer or handle of the trail could keep the child running.
  const send = (command: string): Promise<Reply> => {
    if (command === 'close') child.stdin!.end(`${command}\n`);
    else child.stdin!.write(`${command}\n`);
    return next();
  };

  const ready = await next();
  t.equal(ready.event, 'ready');
  return { pid: child.pid!, logs, exited, send };
}

/** Appends records in steps until the child logs a failed write. */
async function appendUntilWriteFails(child: Awaited<ReturnType<typeof startTrailProcess>>): Promise<LogEntry> {
  const failed = () => child.logs.find((entry) => entry.msg.startsWith('audit write failed'));
  for (let step = 0; step < 100 && !failed(); step++) {
    await child.send('append 20');
    await waitUntil(() => failed() !== undefined, 200, 20);
  }
  if (!failed()) throw new Error(`no write failed after 2000 records under a limit of ${FILE_LIMIT} bytes`);
  return failed()!;
}

function trailLines(dir: string): string[] {
  return trailFiles(dir).flatMap((name) => readLines(path.join(dir, name)));
}

t.test('partial write is cut back before the retry', { skip: SKIP }, async (t) => {
  const { dir, remove } = temporaryDir('partial');
  t.teardown(remove);
  const child = await startTrailProcess(t, dir);

  const failure = await appendUntilWriteFails(child);
  t.equal(failure.err?.code, 'EFBIG');
  t.equal(failure.level, 50);
  const files = trailFiles(dir);
  t.equal(files.length, 1);
  const content = readFileSync(path.join(dir, files[0]!), 'utf8');
  t.ok(content.length < FILE_LIMIT, `${content.length} bytes after the failed write`);
  t.ok(content.endsWith('\n'), 'the file ends with a complete record');

  execFileSync('prlimit', ['--pid', String(child.pid), '--fsize=unlimited:']);
  await child.send('append 20');
  const closed = await child.send('close');
  t.equal(closed.event, 'closed', JSON.stringify(closed));
  t.equal(await child.exited, 0);

  const seqs = trailLines(dir).map((line) => JSON.parse(line).seq as number);
  t.same(seqs, Array.from({ length: closed.seq! }, (_, index) => index + 1), 'every record is written once, in order');
  t.same((await verify(dir)).findings, []);
  t.ok(child.logs.some((entry) => entry.msg.startsWith('audit writes succeed again after')), 'the recovery is logged');
});

t.test('close reports records it could not write', { skip: SKIP }, async (t) => {
  const { dir, remove } = temporaryDir('unwritten');
  t.teardown(remove);
  const child = await startTrailProcess(t, dir);

  const failure = await appendUntilWriteFails(child);
  t.equal(failure.failed_writes, 1, 'the first failed write is logged');
  await child.send('append 20');
  const { health } = await child.send('health');
  t.ok(health!.failed_writes >= 1, `failed_writes ${health!.failed_writes}`);
  t.ok(health!.pending_records >= 20, `pending_records ${health!.pending_records}`);
  t.equal(health!.dropped_records, 0);
  t.equal(health!.last_error, 'EFBIG: file too large, write');

  // A close that kept retrying would never reply, and tap's timeout would fail the test.
  const reply = await child.send('close');
  t.equal(reply.event, 'close_failed');
  t.equal(reply.code, 'WG_AUDIT_WRITE_FAILED');
  t.equal(await child.exited, 0, 'no retry keeps the process alive');

  const written = trailLines(dir).map((line) => JSON.parse(line).seq as number);
  t.same(written, Array.from({ length: written.length }, (_, index) => index + 1), 'the file holds complete records only');
  const unwritten = reply.seq! - written.length;
  t.ok(unwritten >= health!.pending_records, `${unwritten} records not written`);
  t.match(reply.message, `${unwritten} audit records were not written before the close (${unwritten} still queued, 0 dropped earlier while writes failed): EFBIG`);
  const closeLines = child.logs.filter((entry) => entry.msg.includes('not written before the close'));
  t.equal(closeLines.length, 1, 'one log line reports the records not written');
  t.equal(closeLines[0]?.level, 50);
  t.equal(closeLines[0]?.unwritten_records, unwritten);
  t.notOk(existsSync(path.join(dir, 'audit-test1.lock')), 'the lock is released');
});

t.test('SIGINT with a failing disk reports lost records', { skip: SKIP }, async (t) => {
  const { auditDir, configFile, env, ca } = await setUp(t, 'disk-full', 'full1');
  const child = await startWardgate(configFile, env, { fileSizeLimit: 40 * 1024 });
  t.teardown(() => child.process.kill('SIGKILL'));

  await sendLoad(child.port, ca, 'pat-full', 300);
  type Health = { status: string; audit?: { failed_writes: number; pending_records: number; dropped_records: number; last_error: string | null } };
  let health: Health = { status: '' };
  const failing = await waitUntil(async () => {
    health = (await getJson(child.port, '/.wardgate/health', ca)) as Health;
    return (health.audit?.failed_writes ?? 0) >= 1;
  }, 30_000, 200);
  t.ok(failing, `health reports failed writes: ${JSON.stringify(health)}`);
  t.equal(health.status, 'ok');
  t.ok(health.audit!.pending_records > 0, `pending_records ${health.audit?.pending_records}`);
  t.equal(health.audit!.dropped_records, 0);
  t.equal(health.audit!.last_error, 'EFBIG: file too large, write');

  child.process.kill('SIGINT');
  t.same(await child.exited, { code: 1, signal: null }, 'the process stops by itself after the failed close');

  const lost = child.logs.filter((entry) => String(entry.msg).includes('not written before the close'));
  t.equal(lost.length, 1, 'one log line reports the records not written');
  t.equal(lost[0]?.level, 50);
  t.ok((lost[0]?.unwritten_records as number) >= health.audit!.pending_records, `unwritten_records ${lost[0]?.unwritten_records}`);
  t.notOk(child.logs.some((entry) => entry.msg === 'wardgate stopped'), 'the stop is not logged as clean');
  t.ok(child.logs.some((entry) => entry.msg === 'wardgate stopped with errors' && entry.level === 50));
  t.match(child.stderr(), /wardgate: stopped with errors: \d+ audit records were not written before the close/);
  t.ok(trailLines(auditDir).every((line) => line.startsWith('{') && line.endsWith('}')), 'the trail holds complete records only');
});
