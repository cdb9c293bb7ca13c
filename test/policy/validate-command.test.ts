import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { runPolicyValidate } from '../../policy/cli/validate.ts';
import { loadPolicyFile } from '../../policy/index.ts';
import { CapturedOutput } from './helpers.ts';

const DEMO = 'policy/examples/demo.yaml';

t.test('validate prints OK line for a valid file', async (t) => {
  const out = new CapturedOutput();
  const err = new CapturedOutput();
  const hash = createHash('sha256').update(await readFile(DEMO)).digest('hex');

  const code = await runPolicyValidate([DEMO], out, err);

  t.equal(code, 0);
  t.equal(out.text, `OK ${DEMO} (11 rules, sha256 ${hash})\n`);
  t.equal(err.text, '');
});

t.test('validate skips policy test files with a hint', async (t) => {
  const out = new CapturedOutput();
  const err = new CapturedOutput();

  const code = await runPolicyValidate(['policy/examples/demo.tests.yaml', DEMO], out, err);

  t.equal(code, 0);
  t.match(out.text, /^SKIP policy\/examples\/demo\.tests\.yaml \(a policy test file; run it with: wardgate policy test policy\/examples\/demo\.tests\.yaml\)$/m);
  t.match(out.text, /^OK policy\/examples\/demo\.yaml /m);
  t.equal(err.text, '');
});

t.test('validate reports every file and every issue', async (t) => {
  const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'version: 1\nrules:\n  - id: a\n    acton: allow\n');
  const missing = join(dir, 'missing.yaml');
  const out = new CapturedOutput();
  const err = new CapturedOutput();

  const code = await runPolicyValidate([bad, DEMO, missing], out, err);

  t.equal(code, 1);
  t.match(out.text, /^OK policy\/examples\/demo\.yaml \(11 rules, sha256 [0-9a-f]{64}\)\n$/);
  t.equal(err.text, [
    `${bad}:3:5: rule a: the key "action" in rule #1, got no such key [WG_POLICY_MISSING_KEY]`,
    `${bad}:4:5: rule a: one of the keys id, description, match, when, action, reason, step_up, break_glass in rule #1 (did you mean "action"?), got "acton" [WG_POLICY_UNKNOWN_KEY]`,
    `policy file ${missing}: expected a readable file, got ENOENT; check the path and its permissions [WG_POLICY_FILE_READ_FAILED]`,
    '',
  ].join('\n'));
});

t.test('validate rejects paths that are not regular files', { skip: process.platform === 'win32' && 'no FIFOs' }, async (t) => {
  const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'policy.fifo');
  execFileSync('mkfifo', [fifo]);
  t.teardown(() => releaseReader(fifo));
  const socket = join(dir, 'policy.sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => server.close());
  const out = new CapturedOutput();
  const err = new CapturedOutput();

  const code = await runPolicyValidate([fifo, socket, '/dev/null', dir], out, err);

  t.equal(code, 1);
  t.equal(out.text, '');
  t.equal(err.text, [
    `policy file ${fifo}: expected a regular file, got a FIFO; give the path of a regular file [WG_POLICY_FILE_READ_FAILED]`,
    `policy file ${socket}: expected a regular file, got a socket; give the path of a regular file [WG_POLICY_FILE_READ_FAILED]`,
    'policy file /dev/null: expected a regular file, got a character device; give the path of a regular file [WG_POLICY_FILE_READ_FAILED]',
    `policy file ${dir}: expected a regular file, got a directory; give the path of a regular file [WG_POLICY_FILE_READ_FAILED]`,
    '',
  ].join('\n'));
});

t.test('validate without files is a usage error', async (t) => {
  const out = new CapturedOutput();
  const err = new CapturedOutput();

  const code = await runPolicyValidate([], out, err);

  t.equal(code, 2);
  t.equal(out.text, '');
  t.equal(err.text, 'usage: wardgate policy validate FILE...: expected at least one policy file, got none\n');
});

t.test('loading an oversized file reads only past the limit', async (t) => {
  const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const big = join(dir, 'big.yaml');
  await writeFile(big, `version: 1\nrules: []\n# ${'x'.repeat(3000)}\n`);

  await t.rejects(loadPolicyFile(big, { maxBytes: 1000 }), {
    code: 'WG_POLICY_INVALID',
    issues: [{ code: 'WG_POLICY_FILE_TOO_LARGE', line: 1, column: 1, expected: 'a file of at most 1000 bytes', got: '1001 bytes' }],
  });
});

/** Opens the FIFO's write end and closes it, so that a reader waiting in open() returns. */
function releaseReader(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // ENXIO: no reader is waiting. ENOENT: the FIFO is gone.
  }
}
