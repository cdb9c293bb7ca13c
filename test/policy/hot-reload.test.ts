import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';

import { pino } from 'pino';
import t from 'tap';

import { readVerificationKeys } from '../../policy/signing/policy-signature.ts';
import { generatePolicyKeys } from '../../policy/signing/keygen.ts';
import { signPolicyFile } from '../../policy/signing/sign-file.ts';
import { watchPolicy } from '../../proxy/policy-reload.ts';
import { makeContext } from './helpers.ts';

const POLL_MS = 20;
const ALLOW = 'version: 1\nrules:\n  - id: allow-all\n    action: allow\n';
const BLOCK = 'version: 1\nrules:\n  - id: block-all\n    action: block\n';
const BROKEN = 'version: 1\nrules:\n  - id: half\n    acton: allow\n';

function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Waits until `condition` holds, failing after 10 s; polling, not a timing assertion. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += POLL_MS) {
    if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
    await delay(POLL_MS);
  }
}

t.test('changed file is swapped in', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'policy.yaml');
  await writeFile(file, ALLOW);
  const { logger, lines } = capturingLogger();
  const watcher = await watchPolicy(file, [], logger, POLL_MS);
  t.teardown(() => watcher.close());
  const first = watcher.current();

  await writeFile(file, BLOCK);
  await until(() => watcher.current() !== first, 'the reload');

  t.equal(watcher.current().decide(makeContext()).rule, 'block-all');
  t.equal(first.decide(makeContext()).rule, 'allow-all', 'a request holding the old policy keeps deciding with it');
  t.equal(watcher.lastError(), null);
  t.ok(lines.some((line) => line.msg === 'policy reloaded' && line.hash === watcher.current().hash));
});

t.test('broken file keeps last good policy', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'policy.yaml');
  await writeFile(file, ALLOW);
  const { logger, lines } = capturingLogger();
  const watcher = await watchPolicy(file, [], logger, POLL_MS);
  t.teardown(() => watcher.close());
  const good = watcher.current();

  await writeFile(file, BROKEN);
  await until(() => watcher.lastError() !== null, 'the failed reload');

  t.equal(watcher.current(), good, 'the same compiled policy object stays in force');
  t.match(watcher.lastError(), /policy\.yaml:4:5: rule half: one of the keys .* \(did you mean "action"\?\), got "acton" \[WG_POLICY_UNKNOWN_KEY\]/);
  const logged = lines.find((line) => line.msg === 'policy reload failed; the previous policy stays in force');
  t.ok(logged);
  t.equal(logged?.hash, good.hash);
  t.equal(logged?.level, 50, 'logged as an error');

  await writeFile(file, BLOCK);
  await until(() => watcher.current() !== good, 'the recovery');
  t.equal(watcher.lastError(), null, 'a good file clears the error');
});

t.test('costly condition keeps last good policy', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'policy.yaml');
  await writeFile(file, ALLOW);
  const { logger } = capturingLogger();
  const watcher = await watchPolicy(file, [], logger, POLL_MS);
  t.teardown(() => watcher.close());
  const good = watcher.current();
  const list = `[${Array(200).fill('1').join(', ')}]`;

  await writeFile(file, `${BLOCK}    when: "${list}.all(a, ${list}.all(b, ${list}.all(c, a + b + c == 3)))"\n`);
  await until(() => watcher.lastError() !== null, 'the rejected reload');

  t.equal(watcher.current(), good, 'the same compiled policy object stays in force');
  t.match(watcher.lastError(), /^.*policy\.yaml:5:12: rule block-all: an estimated cost of at most 100000 steps per evaluation .*, got an estimated cost of \d+ steps \[WG_POLICY_CEL_COST\]$/);
});

t.test('concurrent decisions see whole policies only', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'policy.yaml');
  await writeFile(file, ALLOW);
  const { logger } = capturingLogger();
  const watcher = await watchPolicy(file, [], logger, POLL_MS);
  t.teardown(() => watcher.close());

  const seen = new Set<string>();
  let stop = false;
  const decider = (async () => {
    while (!stop) {
      seen.add(watcher.current().decide(makeContext()).rule);
      await delay(1);
    }
  })();
  for (const source of [BLOCK, BROKEN, ALLOW, `${BROKEN.slice(0, 20)}`, BLOCK]) {
    const before = watcher.current();
    const errorBefore = watcher.lastError();
    await writeFile(file, source);
    await until(() => watcher.current() !== before || watcher.lastError() !== errorBefore, 'a reload attempt');
  }
  stop = true;
  await decider;

  t.same([...seen].sort(), ['allow-all', 'block-all'], 'every decision came from one complete policy');
  await until(() => watcher.current().decide(makeContext()).rule === 'block-all', 'the last good file');
  t.equal(watcher.current().ruleIds.length, 1);
});

t.test('unsigned change rejected when signing required', async (t) => {
  const dir = await tempDir(t);
  const keysDir = join(dir, 'keys');
  await generatePolicyKeys(keysDir);
  const keys = await readVerificationKeys(join(keysDir, 'policy-ed25519.pub'), join(keysDir, 'policy-ml-dsa-65.pub'));
  const file = join(dir, 'policy.yaml');
  await writeFile(file, ALLOW);
  await signPolicyFile(keysDir, file);
  const { logger } = capturingLogger();
  const watcher = await watchPolicy(file, [], logger, POLL_MS, { signing: keys });
  t.teardown(() => watcher.close());
  const good = watcher.current();

  await writeFile(file, BLOCK);
  await until(() => watcher.lastError() !== null, 'the rejected reload');
  t.equal(watcher.current(), good);
  t.match(watcher.lastError(), /expected a valid Ed25519 signature/);

  await signPolicyFile(keysDir, file);
  await until(() => watcher.current() !== good, 'the signed reload');
  t.equal(watcher.current().decide(makeContext()).rule, 'block-all');
  t.equal(watcher.lastError(), null);
  t.equal(await readFile(file, 'utf8'), BLOCK);
});

t.test('start-up fails on a broken or unsigned file', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'policy.yaml');
  await writeFile(file, BROKEN);
  const { logger } = capturingLogger();

  await t.rejects(watchPolicy(file, [], logger, POLL_MS), { code: 'WG_POLICY_INVALID' });

  const keysDir = join(dir, 'keys');
  await generatePolicyKeys(keysDir);
  const keys = await readVerificationKeys(join(keysDir, 'policy-ed25519.pub'), join(keysDir, 'policy-ml-dsa-65.pub'));
  await writeFile(file, ALLOW);
  await t.rejects(watchPolicy(file, [], logger, POLL_MS, { signing: keys }), { code: 'WG_POLICY_SIGNATURE_MISSING' });
});

t.test('FIFO in place of the policy is rejected', { skip: process.platform === 'win32' && 'no FIFOs' }, async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'candidate.yaml');
  await writeFile(file, ALLOW);
  const { logger } = capturingLogger();
  const watcher = await watchPolicy(file, [], logger, POLL_MS, { option: 'shadow_policy' });
  t.teardown(() => watcher.close());
  const good = watcher.current();

  await rm(file);
  execFileSync('mkfifo', [file]);
  t.teardown(() => releaseReader(file));
  await until(() => watcher.lastError() !== null, 'the rejected reload');
  t.equal(watcher.lastError(), `policy file ${file}: expected a regular file, got a FIFO; point shadow_policy at a regular file`);
  t.equal(watcher.current(), good, 'the last good policy stays in force');

  await rm(file);
  await writeFile(file, BLOCK);
  await until(() => watcher.current() !== good, 'the reload of the regular file');
  t.equal(watcher.current().decide(makeContext()).rule, 'block-all');
  t.equal(watcher.lastError(), null, 'the regular file clears the error');
});

/** Opens the FIFO's write end and closes it, so that a reader waiting in open() returns. */
function releaseReader(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // ENXIO: no reader is waiting. ENOENT: the FIFO is gone.
  }
}
