import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pino } from 'pino';
import t from 'tap';

import { generatePolicyKeys } from '../../policy/signing/keygen.ts';
import { signPolicyFile } from '../../policy/signing/sign-file.ts';
import type { WardgateConfig } from '../../proxy/config/config.ts';
import { startPolicies } from '../../proxy/policy-setup.ts';
import { makeContext } from './helpers.ts';

const logger = pino({ level: 'silent' });
const ALLOW = 'version: 1\nrules:\n  - id: allow-all\n    action: allow\n';
const BLOCK = 'version: 1\nrules:\n  - id: block-all\n    action: block\n';

async function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const active = join(dir, 'active.yaml');
  const candidate = join(dir, 'candidate.yaml');
  await writeFile(active, ALLOW);
  await writeFile(candidate, BLOCK);
  const keys = join(dir, 'keys');
  await generatePolicyKeys(keys);
  const config = (extra: Partial<WardgateConfig>) => ({ policy: active, routes: [{ id: 'ehr' }], ...extra }) as unknown as WardgateConfig;
  const signing = { required: true, ed25519_public_key: join(keys, 'policy-ed25519.pub'), ml_dsa_65_public_key: join(keys, 'policy-ml-dsa-65.pub') };

  return { dir, active, candidate, keys, config, signing };
}

t.test('shadow candidate compared, active enforced', async (t) => {
  const { candidate, config } = await setup(t);
  const policies = await startPolicies(config({ shadow_policy: candidate }), logger, 50);
  t.teardown(() => policies.close());

  const context = makeContext();
  const decision = policies.active.current().decide(context);
  const outcome = policies.shadow!.comparator.compare(context, decision, policies.shadow!.candidate());

  t.equal(decision.rule, 'allow-all');
  t.equal(outcome.difference?.candidateRule, 'block-all');
  t.match(policies.shadowHealth(), { last_reload_error: null, compared: 1, differing: 1 });
});

t.test('no shadow without shadow_policy', async (t) => {
  const { config } = await setup(t);
  const policies = await startPolicies(config({}), logger, 50);
  t.teardown(() => policies.close());

  t.equal(policies.shadow, undefined);
  t.equal(policies.shadowHealth(), undefined);
});

t.test('signing required covers both files', async (t) => {
  const { active, candidate, keys, config, signing } = await setup(t);

  await t.rejects(startPolicies(config({ policy_signing: signing }), logger, 50), { code: 'WG_POLICY_SIGNATURE_MISSING', message: /active\.yaml/ });

  await signPolicyFile(keys, active);
  await t.rejects(startPolicies(config({ policy_signing: signing, shadow_policy: candidate }), logger, 50), { code: 'WG_POLICY_SIGNATURE_MISSING', message: /candidate\.yaml/ });

  await signPolicyFile(keys, candidate);
  const policies = await startPolicies(config({ policy_signing: signing, shadow_policy: candidate }), logger, 50);
  t.teardown(() => policies.close());
  t.equal(policies.active.current().ruleIds[0], 'allow-all');
});

t.test('unreadable signing key stops start-up', async (t) => {
  const { config, signing, dir } = await setup(t);

  await t.rejects(startPolicies(config({ policy_signing: { ...signing, ml_dsa_65_public_key: join(dir, 'nope.pub') } }), logger, 50), {
    code: 'WG_POLICY_SIGNING_KEY_INVALID',
    message: /^policy_signing\.ml_dsa_65_public_key: expected a readable key file/,
  });
});
