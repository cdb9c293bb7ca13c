import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { ensureDevCertificates } from '../../certs/dev-certificates.ts';
import { startDemoApp } from '../../demo/app/server.ts';
import { startDemoIdp } from '../../demo/idp/idp.ts';
import { runCli } from '../../proxy/cli/commands.ts';
import { readLines, temporaryDir, trailFiles } from './helpers.ts';

const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Child {
  readonly process: ChildProcess;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `wardgate start --config FILE` as a child process and waits for its "wardgate started" log line. */
async function startWardgate(configFile: string, env: NodeJS.ProcessEnv): Promise<Child> {
  const child = spawn(process.execPath, [path.join(REPOSITORY, 'proxy/cli/wardgate.ts'), 'start', '--config', configFile], { cwd: REPOSITORY, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === 'wardgate started') resolve(entry.port!);
    });
    exited.then(({ code }) => reject(new Error(`wardgate exited with code ${code} before it started: ${stderr}`)));
  });
  return { process: child, port, exited };
}

function get(port: number, target: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port, path: target, servername: 'localhost', headers: { host: 'localhost', accept: 'application/fhir+json' }, ca, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
    request.end();
  });
}

async function sendLoad(port: number, ca: string, prefix: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let start = 0; start < count; start += 10) {
    const batch = Array.from({ length: Math.min(10, count - start) }, (_, offset) => get(port, `/fhir/Patient/${prefix}-${start + offset}`, ca));
    statuses.push(...(await Promise.all(batch)));
  }
  return statuses;
}

/** Starts the demo app and IdP and writes a Wardgate configuration whose audit trail is in `audit` of a new folder. */
async function setUp(t: Test, label: string, instanceId: string) {
  const { dir, remove } = temporaryDir(label);
  t.teardown(remove);
  const certificates = await ensureDevCertificates(path.join(dir, 'certs'));
  const app = await startDemoApp({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const clientSecret = randomBytes(24).toString('base64url');
  const idp = await startDemoIdp({
    port: 0,
    host: '127.0.0.1',
    tls: { key: certificates.server.key, cert: certificates.server.cert },
    clients: [{ client_id: 'wardgate-test', client_secret: clientSecret, redirect_uris: ['https://localhost:1/.wardgate/callback'] }],
  });
  t.teardown(() => idp.close());

  const auditDir = path.join(dir, 'audit');
  const configFile = path.join(dir, 'wardgate.yaml');
  writeFileSync(
    configFile,
    [
      'listen: { host: 127.0.0.1, port: 0 }',
      `tls: { cert: ${certificates.paths.serverCert}, key: ${certificates.paths.serverKey} }`,
      'redis: { url: memory }',
      `oidc: { issuer: "${idp.issuer}", client_id: wardgate-test, ca: ${certificates.paths.caCert} }`,
      `policy: ${path.join(REPOSITORY, 'policy/examples/demo.yaml')}`,
      `model: ${path.join(REPOSITORY, 'scorer/models/risk-v3.onnx')}`,
      `audit: { dir: audit, checkpoint_every: 25, checkpoint_interval: 1, instance_id: ${instanceId} }`,
      'routes:',
      `  - { id: ehr, host: "*", path_prefix: /, upstream: "${app.url}" }`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, WARDGATE_OIDC_CLIENT_SECRET: clientSecret, WARDGATE_PATIENT_KEY: randomBytes(32).toString('hex'), WARDGATE_LOG_LEVEL: 'info' };
  return { auditDir, configFile, env, ca: certificates.ca.cert };
}

/** Runs `wardgate audit verify DIR` and returns its exit code and output. */
async function verifyCommand(auditDir: string): Promise<{ code: number; printed: string }> {
  const output = new PassThrough();
  let printed = '';
  output.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  const code = await runCli(['audit', 'verify', auditDir], output, output);
  return { code, printed };
}

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
