import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { loadPolicyFile } from '../../policy/index.ts';
import { readVerificationKeys } from '../../policy/signing/policy-signature.ts';
import { runPolicyCommand } from '../../proxy/cli/policy-command.ts';
import { CapturedOutput } from './helpers.ts';

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new CapturedOutput();
  const err = new CapturedOutput();
  const code = await runPolicyCommand(argv, out, err);
  return { code, out: out.text, err: err.text };
}

/** Creates keys and a signed copy of the demo policy in a fresh directory. */
async function signedSetup(t: { teardown(fn: () => unknown): void }) {
  const dir = await tempDir(t);
  const keys = join(dir, 'keys');
  const policy = join(dir, 'policy.yaml');
  await copyFile('policy/examples/demo.yaml', policy);
  t.teardown(() => undefined);

  const keygen = await cli(['keygen', '--out', keys]);
  if (keygen.code !== 0) throw new Error(keygen.err);
  const sign = await cli(['sign', '--key-dir', keys, policy]);
  if (sign.code !== 0) throw new Error(sign.err);
  const verification = await readVerificationKeys(join(keys, 'policy-ed25519.pub'), join(keys, 'policy-ml-dsa-65.pub'));

  return { dir, keys, policy, verification };
}

t.test('keygen writes private keys with mode 0600', async (t) => {
  const dir = await tempDir(t);
  const keys = join(dir, 'keys');

  const { code, out } = await cli(['keygen', '--out', keys]);

  t.equal(code, 0);
  t.match(out, /wrote .*policy-ed25519\.key/);
  t.equal((await stat(join(keys, 'policy-ed25519.key'))).mode & 0o777, 0o600);
  t.equal((await stat(join(keys, 'policy-ml-dsa-65.key'))).mode & 0o777, 0o600);
  t.equal((await stat(join(keys, 'policy-ed25519.pub'))).mode & 0o777, 0o644);
  t.match(await readFile(join(keys, 'policy-ml-dsa-65.pub'), 'utf8'), /^-----BEGIN ML-DSA-65 PUBLIC KEY-----\n/);
});

t.test('keygen never overwrites keys', async (t) => {
  const dir = await tempDir(t);
  await cli(['keygen', '--out', dir]);
  const before = await readFile(join(dir, 'policy-ed25519.key'), 'utf8');

  const again = await cli(['keygen', '--out', dir]);

  t.equal(again.code, 1);
  t.match(again.err, /expected no key file at .*policy-ed25519\.key, got an existing one/);
  t.match(again.err, /\[WG_POLICY_SIGNING_KEY_INVALID\]/);
  t.equal(await readFile(join(dir, 'policy-ed25519.key'), 'utf8'), before);
});

t.test('signed policy loads with signing required', async (t) => {
  const { policy, verification } = await signedSetup(t);
  const signature = JSON.parse(await readFile(`${policy}.sig`, 'utf8')) as Record<string, unknown>;

  t.equal(signature.version, 1);
  t.equal(signature.digest, 'sha512');
  const loaded = await loadPolicyFile(policy, { signing: verification });
  t.equal(loaded.ruleIds.length, 11);
});

t.test('missing signature rejected', async (t) => {
  const { policy, verification } = await signedSetup(t);
  await rm(`${policy}.sig`);

  await t.rejects(loadPolicyFile(policy, { signing: verification }), {
    code: 'WG_POLICY_SIGNATURE_MISSING',
    message: /expected a signature file .*policy\.yaml\.sig because policy_signing\.required is true, got none/,
  });
});

t.test('changed file fails both signatures', async (t) => {
  const { policy, verification } = await signedSetup(t);
  await writeFile(policy, `${await readFile(policy, 'utf8')}\n# edited after signing\n`);

  await t.rejects(loadPolicyFile(policy, { signing: verification }), { code: 'WG_POLICY_SIGNATURE_INVALID', message: /valid Ed25519 signature/ });
});

t.test('each broken signature rejected on its own', async (t) => {
  const { policy, verification } = await signedSetup(t);
  const original = JSON.parse(await readFile(`${policy}.sig`, 'utf8')) as Record<string, string>;
  const flip = (base64: string) => {
    const bytes = Buffer.from(base64, 'base64');
    bytes[5] ^= 0x01;
    return bytes.toString('base64');
  };

  await writeFile(`${policy}.sig`, JSON.stringify({ ...original, ed25519: flip(original.ed25519!) }));
  await t.rejects(loadPolicyFile(policy, { signing: verification }), { code: 'WG_POLICY_SIGNATURE_INVALID', message: /Ed25519/ });

  await writeFile(`${policy}.sig`, JSON.stringify({ ...original, ml_dsa_65: flip(original.ml_dsa_65!) }));
  await t.rejects(loadPolicyFile(policy, { signing: verification }), { code: 'WG_POLICY_SIGNATURE_INVALID', message: /ML-DSA-65/ });

  await writeFile(`${policy}.sig`, 'not json');
  await t.rejects(loadPolicyFile(policy, { signing: verification }), { code: 'WG_POLICY_SIGNATURE_INVALID', message: /got text that is not JSON/ });
});

t.test('signature from other keys rejected', async (t) => {
  const { policy } = await signedSetup(t);
  const other = await signedSetup(t);

  await t.rejects(loadPolicyFile(policy, { signing: other.verification }), { code: 'WG_POLICY_SIGNATURE_INVALID' });
});

t.test('unusable public key files rejected', async (t) => {
  const { keys } = await signedSetup(t);

  await t.rejects(readVerificationKeys(join(keys, 'absent.pub'), join(keys, 'policy-ml-dsa-65.pub')), {
    code: 'WG_POLICY_SIGNING_KEY_INVALID',
    message: /^policy_signing\.ed25519_public_key: expected a readable key file .*absent\.pub, got ENOENT/,
  });
  await t.rejects(readVerificationKeys(join(keys, 'policy-ed25519.pub'), join(keys, 'policy-ed25519.pub')), {
    code: 'WG_POLICY_SIGNING_KEY_INVALID',
    message: /^policy_signing\.ml_dsa_65_public_key: expected a key written by "wardgate policy keygen"/,
  });
});

t.test('sign usage errors', async (t) => {
  const noFile = await cli(['sign', '--key-dir', '/nonexistent']);
  t.equal(noFile.code, 2);

  const dir = await tempDir(t);
  const noKeys = await cli(['sign', '--key-dir', dir, 'policy/examples/demo.yaml']);
  t.equal(noKeys.code, 1);
  t.match(noKeys.err, /--key-dir: expected a readable key file .*policy-ed25519\.key, got ENOENT/);
});
