import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ensureDevCertificates } from '../../certs/dev-certificates.ts';
import { runCli } from '../../proxy/cli/commands.ts';

// `wardgate start` with a broken configuration or an unreachable dependency: one clear
// message that names the option and the fix, exit 1, and no stack trace.
const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const model = path.join(REPOSITORY, 'scorer/models', readdirSync(path.join(REPOSITORY, 'scorer/models')).find((name) => name.endsWith('.onnx'))!);
const folder = mkdtempSync(path.join(tmpdir(), 'wgtest-start-'));
t.teardown(() => rmSync(folder, { recursive: true, force: true }));
const certificates = await ensureDevCertificates(path.join(folder, 'certs'));
process.env.WGTEST_START_SECRET = 'client-secret';
process.env.WGTEST_START_PATIENT_KEY = randomBytes(32).toString('hex');

function config(overrides: { redis?: string; cert?: string; extra?: string } = {}): string {
  return `listen: { host: 127.0.0.1, port: 0 }
tls:
  cert: ${overrides.cert ?? certificates.paths.serverCert}
  key: ${certificates.paths.serverKey}
redis:
  url: ${overrides.redis ?? 'redis://127.0.0.1:1'}
oidc:
  issuer: https://127.0.0.1:1
  client_id: wardgate
  client_secret_env: WGTEST_START_SECRET
policy: ${path.join(REPOSITORY, 'policy/examples/demo.yaml')}
model: ${model}
patient_key_env: WGTEST_START_PATIENT_KEY
${overrides.extra ?? ''}routes:
  - { id: ehr, host: "*", upstream: "http://127.0.0.1:1" }
`;
}

async function start(text: string | Buffer): Promise<{ code: number; err: string }> {
  const file = path.join(folder, `config-${randomBytes(4).toString('hex')}.yaml`);
  writeFileSync(file, text);
  const out = new PassThrough();
  const err = new PassThrough();
  let stderr = '';
  err.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await runCli(['start', '--config', file], out, err);
  return { code, err: stderr };
}

t.test('a file that is not UTF-8 is named with the line and column of the bad byte', async (t) => {
  const text = Buffer.concat([Buffer.from(config().replace('client_id: wardgate', 'client_id: ward')), Buffer.from([0xff, 0xfe])]);
  const bad = Buffer.from(config().replace('client_id: wardgate', 'client_id: ward\u0000'));
  bad[bad.indexOf(0)] = 0xe9; // a Latin-1 "é" where UTF-8 is expected
  for (const bytes of [text, bad]) {
    const result = await start(bytes);
    t.equal(result.code, 1);
    t.match(result.err, /:\d+:\d+: \(file\): byte 0x(ff|e9) is not valid UTF-8; save the file as UTF-8/);
  }
  const result = await start(bad);
  t.match(result.err, /:9:\d+:/, 'the line of client_id');
});

t.test('a duplicate key is named', async (t) => {
  const result = await start(config({ extra: 'model: again.onnx\n' }));
  t.equal(result.code, 1);
  t.match(result.err, /key "model" appears twice in the same section; keep one/);
});

t.test('a missing certificate names the option and the path', async (t) => {
  const missing = path.join(folder, 'no-such.crt');
  const result = await start(config({ cert: missing }));
  t.equal(result.code, 1);
  t.match(result.err, new RegExp(`:3:\\d+: tls\\.cert: cannot read ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(ENOENT\\)`));
});

t.test('a folder where a file belongs names the option', async (t) => {
  const result = await start(config({ cert: folder }));
  t.equal(result.code, 1);
  t.match(result.err, /:3:\d+: tls\.cert: cannot read .* \(a folder, not a file\)/);
});

t.test('an empty or list-shaped file says the file must be a mapping', async (t) => {
  for (const text of ['', '- a\n- b\n']) {
    const result = await start(text);
    t.equal(result.code, 1);
    t.match(result.err, /:1:1: \(file\): expected a mapping/);
  }
});

t.test('unreachable Redis at start-up is one line naming redis.url, without a stack trace', async (t) => {
  const result = await start(config({ redis: 'redis://127.0.0.1:1' }));
  t.equal(result.code, 1);
  t.match(result.err, /Redis at 127\.0\.0\.1:1 is not reachable \(.*\)\. Check redis\.url in the configuration/);
  t.notMatch(result.err, /^\s+at /m, 'no stack trace');
  t.equal(result.err.trim().split('\n').length, 1);
});
