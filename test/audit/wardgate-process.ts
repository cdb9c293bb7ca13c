import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { ensureDevCertificates } from '../../certs/dev-certificates.ts';
import { startDemoApp } from '../../demo/app/server.ts';
import { startDemoIdp } from '../../demo/idp/idp.ts';
import { runCli } from '../../proxy/cli/commands.ts';
import { temporaryDir } from './helpers.ts';

const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Child {
  readonly process: ChildProcess;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Log entries written to stdout so far. */
  readonly logs: Array<{ level?: number; msg?: string; [field: string]: unknown }>;
  /** Text written to stderr so far. */
  stderr(): string;
}

/**
 * Starts `wardgate start --config FILE` as a child process and waits for its "wardgate started"
 * log line. With `fileSizeLimit`, the process runs under that soft RLIMIT_FSIZE in bytes (set
 * with util-linux `prlimit`), so that a write beyond it fails with EFBIG.
 */
export async function startWardgate(configFile: string, env: NodeJS.ProcessEnv, options: { fileSizeLimit?: number } = {}): Promise<Child> {
  const command = [path.join(REPOSITORY, 'proxy/cli/wardgate.ts'), 'start', '--config', configFile];
  const [file, args] = options.fileSizeLimit === undefined ? [process.execPath, command] : withFileSizeLimit(options.fileSizeLimit, command);
  const child = spawn(file, args, { cwd: REPOSITORY, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const logs: Child['logs'] = [];
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Child['logs'][number];
      logs.push(entry);
      if (entry.msg === 'wardgate started') resolve(entry.port as number);
    });
    exited.then(({ code }) => reject(new Error(`wardgate exited with code ${code} before it started: ${stderr}`)));
  });
  return { process: child, port, exited, logs, stderr: () => stderr };
}

/**
 * Returns the command line that runs `node ...args` under a soft RLIMIT_FSIZE of `bytes`, set
 * with util-linux `prlimit`, so that a write beyond it fails with EFBIG. Under tap, every
 * spawned process gets NODE_OPTIONS that load @tapjs/processinfo, whose signal-exit handler
 * turns the SIGXFSZ that Node otherwise ignores into a kill. So `env -u` removes it.
 */
export function withFileSizeLimit(bytes: number, args: string[]): [string, string[]] {
  return ['prlimit', [`--fsize=${bytes}:`, '--', 'env', '-u', 'NODE_OPTIONS', process.execPath, ...args]];
}

/** Returns the parsed JSON body of a GET, such as `/.wardgate/health`. */
export function getJson(port: number, target: string, ca: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port, path: target, servername: 'localhost', headers: { host: 'localhost' }, ca, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
    });
    request.on('error', reject);
    request.end();
  });
}

export function get(port: number, target: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port, path: target, servername: 'localhost', headers: { host: 'localhost', accept: 'application/fhir+json' }, ca, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
    request.end();
  });
}

export async function sendLoad(port: number, ca: string, prefix: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let start = 0; start < count; start += 10) {
    const batch = Array.from({ length: Math.min(10, count - start) }, (_, offset) => get(port, `/fhir/Patient/${prefix}-${start + offset}`, ca));
    statuses.push(...(await Promise.all(batch)));
  }
  return statuses;
}

/** Starts the demo app and IdP and writes a Wardgate configuration whose audit trail is in `audit` of a new folder. */
export async function setUp(t: Test, label: string, instanceId: string) {
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
      `model: ${path.join(REPOSITORY, 'scorer/models/risk-v4.onnx')}`,
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
export async function verifyCommand(auditDir: string): Promise<{ code: number; printed: string }> {
  const output = new PassThrough();
  let printed = '';
  output.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  const code = await runCli(['audit', 'verify', auditDir], output, output);
  return { code, printed };
}
