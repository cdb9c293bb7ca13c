import path from 'node:path';
import { PassThrough } from 'node:stream';
import { mkdirSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { runCli } from '../../proxy/cli/commands.ts';
import { parseConfig } from '../../proxy/config/config.ts';
import { ConfigError } from '../../proxy/config/errors.ts';
import { appendDecisions, openTestTrail, readLines, temporaryDir, trailFiles, writeLines } from './helpers.ts';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (chunk: Buffer) => (chunks.out += chunk.toString()));
  err.on('data', (chunk: Buffer) => (chunks.err += chunk.toString()));
  const code = await runCli(argv, out, err);
  return { code, ...chunks };
}

const trail = temporaryDir('cli');
t.teardown(trail.remove);
t.before(async () => {
  const writer = await openTestTrail(trail.dir);
  appendDecisions(writer, 5);
  await writer.close();
});

t.test('verify exits 0 on an intact trail', async (t) => {
  const result = await run(['audit', 'verify', trail.dir]);
  t.equal(result.code, 0);
  t.equal(result.err, '');
  t.match(result.out, /^.*: 1 instance\(s\), 1 file\(s\), 7 records, 1 checkpoints: intact\n$/);
});

t.test('verify exits 1 with file:line per finding', async (t) => {
  const copy = temporaryDir('cli-edit');
  t.teardown(copy.remove);
  const writer = await openTestTrail(copy.dir);
  appendDecisions(writer, 5);
  await writer.close();
  const file = path.join(copy.dir, trailFiles(copy.dir)[0]!);
  const lines = readLines(file);
  lines[2] = lines[2]!.replace('"risk":0.1', '"risk":0.9');
  writeLines(file, lines);

  const result = await run(['audit', 'verify', copy.dir]);
  t.equal(result.code, 1);
  t.match(result.out, `${file}:3: WG_AUDIT_RECORD_EDITED: record seq 3 was edited`);
  t.match(result.out, /: 1 finding\n$/);
});

t.test('verify --open accepts a live trail', async (t) => {
  const live = temporaryDir('cli-live');
  t.teardown(live.remove);
  const writer = await openTestTrail(live.dir);
  t.teardown(() => writer.close());
  appendDecisions(writer, 3);
  await writer.flush();

  const strict = await run(['audit', 'verify', live.dir]);
  t.equal(strict.code, 1);
  t.match(strict.out, /audit-test1-000001\.jsonl:4: WG_AUDIT_UNSIGNED_TAIL: .*\(use --open for a running instance\)/);
  const open = await run(['audit', 'verify', live.dir, '--open']);
  t.equal(open.code, 0);
  t.match(open.out, /audit-test1-000001\.jsonl:4: WG_AUDIT_UNSIGNED_TAIL: .*\(note\)/);
});

t.test('verify with an explicit key file', async (t) => {
  const result = await run(['audit', 'verify', trail.dir, '--public-key', path.join(trail.dir, 'keys', 'audit-public-keys.json')]);
  t.equal(result.code, 0);
});

const usageCases: [string[], RegExp][] = [
  [['audit'], /^wardgate: unknown audit subcommand ""; expected "audit verify DIR"/],
  [['audit', 'verify'], /^wardgate: missing audit folder/],
  [['audit', 'verify', '/nonexistent/audit'], /^wardgate: audit folder \/nonexistent\/audit not found/],
  [['audit', 'verify', 'a', 'b'], /^wardgate: unexpected argument "b"/],
  [['audit', 'verify', '.', '--key'], /^wardgate: unknown option --key/],
  [['audit', 'verify', '/tmp', '--public-key', '/nonexistent/keys.json'], /^wardgate: Cannot read the trusted public key file \/nonexistent\/keys.json \(ENOENT\)/],
];

for (const [argv, reason] of usageCases) {
  t.test(`usage error: ${argv.join(' ')}`, async (t) => {
    const result = await run(argv);
    t.equal(result.code, 2);
    t.match(result.err, reason);
    t.equal(result.err.split('\n').filter(Boolean).length, 1, 'the reason is one line');
  });
}

t.test('verify on a file is a usage error', async (t) => {
  const file = path.join(trail.dir, trailFiles(trail.dir)[0]!);
  const result = await run(['audit', 'verify', file]);
  t.equal(result.code, 2);
  t.equal(result.err, `wardgate: audit path ${file} is not a folder; pass the folder set as audit.dir\n`);
  t.equal(result.out, '');
});

t.test('verify on an empty folder reports no trail files', async (t) => {
  const empty = temporaryDir('cli-empty');
  t.teardown(empty.remove);
  const result = await run(['audit', 'verify', empty.dir]);
  t.equal(result.code, 1);
  t.equal(result.err, '');
  t.match(result.out, /:0: WG_AUDIT_NO_FILES: no audit files \(audit-<instance>-<n>\.jsonl\) in this folder/);
  t.notMatch(result.out, /keys/, 'the missing key file is not reported');
});

t.test('verify names a folder in place of a trail file', async (t) => {
  const copy = temporaryDir('cli-eisdir');
  t.teardown(copy.remove);
  const writer = await openTestTrail(copy.dir);
  appendDecisions(writer, 2);
  await writer.close();
  const second = await openTestTrail(copy.dir);
  await second.close();
  const folder = path.join(copy.dir, 'audit-test1-000003.jsonl');
  mkdirSync(folder);
  const result = await run(['audit', 'verify', copy.dir]);
  t.equal(result.code, 1);
  t.equal(result.err, '');
  t.match(result.out, `${folder}:0: WG_AUDIT_FILE_UNREADABLE: the path is a folder, not a trail file`);
});

t.test('malformed key file is a usage error', async (t) => {
  const dir = temporaryDir('badkey');
  t.teardown(dir.remove);
  const file = path.join(dir.dir, 'keys.json');
  writeFileSync(file, '{"ed25519": "short", "ml_dsa_65": ""}');
  const result = await run(['audit', 'verify', trail.dir, '--public-key', file]);
  t.equal(result.code, 2);
  t.match(result.err, /Invalid ed25519 public key in .*keys\.json: expected 32 bytes as base64url/);
});

t.test('help', async (t) => {
  const result = await run(['audit', '--help']);
  t.equal(result.code, 0);
  t.match(result.out, /^Usage: wardgate audit verify DIR/);
});

const BASE = `
tls: { cert: c.pem, key: k.pem }
oidc: { issuer: https://idp.example, client_id: wg }
policy: p.yaml
model: m.onnx
routes: [{ id: ehr, upstream: "http://127.0.0.1:1" }]
`;
const ENV = { WARDGATE_OIDC_CLIENT_SECRET: 'secret', WARDGATE_PATIENT_KEY: 'ab'.repeat(32) };

t.test('audit config defaults', async (t) => {
  const config = parseConfig(BASE, '/etc/wardgate/wardgate.yaml', ENV);
  t.match(config.audit, {
    dir: '/etc/wardgate/.wardgate/audit',
    key_dir: '/etc/wardgate/.wardgate/audit/keys',
    checkpoint_every: 1000,
    checkpoint_interval: 60,
    max_file_bytes: 64 * 1024 * 1024,
    fsync_interval: 200,
    instance_id: /^[A-Za-z0-9._]+$/,
  });
});

t.test('audit config values', async (t) => {
  const yaml = `${BASE}audit: { dir: /var/lib/wardgate/audit, key_dir: keys, checkpoint_every: 10, checkpoint_interval: 5, max_file_bytes: 1048576, fsync_interval: 50, instance_id: wg1 }\n`;
  const config = parseConfig(yaml, '/etc/wardgate/wardgate.yaml', ENV);
  t.same(config.audit, { dir: '/var/lib/wardgate/audit', key_dir: '/etc/wardgate/keys', checkpoint_every: 10, checkpoint_interval: 5, max_file_bytes: 1048576, fsync_interval: 50, instance_id: 'wg1' });
});

t.test('audit config errors name the option', async (t) => {
  const yaml = `${BASE}audit: { instance_id: "wg-1", checkpoint_every: 0, fsync: 5 }\n`;
  const error = (() => {
    try {
      parseConfig(yaml, 'w.yaml', ENV);
    } catch (caught) {
      return caught;
    }
  })() as ConfigError;
  t.ok(error instanceof ConfigError);
  const options = error.issues.map((issue) => issue.option);
  t.ok(options.includes('audit.instance_id'), options.join(', '));
  t.ok(options.includes('audit.checkpoint_every'), options.join(', '));
  t.ok(options.includes('audit.fsync'), options.join(', '));
  t.match(error.message, /w\.yaml:7:\d+: audit\.fsync: unknown option/);
});
