import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { runPolicyTest } from '../../policy/cli/test-command.ts';
import { CapturedOutput } from './helpers.ts';

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function run(paths: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new CapturedOutput();
  const err = new CapturedOutput();
  const code = await runPolicyTest(paths, out, err);
  return { code, out: out.text, err: err.text };
}

t.test('example policy tests pass', async (t) => {
  const { code, out, err } = await run(['policy/examples']);

  t.equal(err, '');
  t.equal(code, 0);
  t.match(out, /^PASS policy\/examples\/demo\.tests\.yaml: physician reads a patient$/m);
  t.match(out, /^PASS policy\/examples\/hospital\.tests\.yaml: pump on IPv6 device network$/m);
  t.notMatch(out, /^FAIL/m);
  t.match(out, /^\d+ passed, 0 failed\n$/m);
});

t.test('wrong expectation fails with exit 1', async (t) => {
  const dir = await tempDir(t);
  await copyFile('policy/examples/demo.yaml', join(dir, 'demo.yaml'));
  await writeFile(join(dir, 'wrong.tests.yaml'), `version: 1
policy: demo.yaml
defaults:
  time: "2025-01-06T10:00:00Z"
cases:
  - name: right
    context: { principal: { groups: [clinicians] }, route: { id: ehr } }
    expect: { action: allow, rule: clinicians-allow }
  - name: clerk may not read observations
    context:
      principal: { groups: [records] }
      route: { id: ehr }
      request: { path: /fhir/Observation/1 }
    expect: { action: allow, rule: records-allow }
`);

  const { code, out } = await run([dir]);

  t.equal(code, 1);
  t.match(out, /^PASS .*wrong\.tests\.yaml: right$/m);
  t.match(out, /^FAIL .*wrong\.tests\.yaml:9:5: clerk may not read observations: expected allow by rule records-allow, got block by rule records-no-observations \(rule records-no-observations matched/m);
  t.match(out, /^1 passed, 1 failed$/m);
});

t.test('test file errors name position and fix', async (t) => {
  const dir = await tempDir(t);
  await copyFile('policy/examples/demo.yaml', join(dir, 'demo.yaml'));
  await writeFile(join(dir, 'broken.tests.yaml'), `version: 1
policy: demo.yaml
cases:
  - name: typo in key
    contxt: {}
    expect: { action: allow }
  - name: unknown action and rule
    context: { time: "2025-01-06T10:00:00Z" }
    expect: { action: permit, rule: clinicians-alow }
  - name: bad context
    context: { risk: 3, time: yesterday, principal: { method: kerberos } }
    expect: { action: block }
`);

  const { code, err } = await run([join(dir, 'broken.tests.yaml')]);
  const lines = err.trim().split('\n');

  t.equal(code, 1);
  t.match(lines[0], /broken\.tests\.yaml:5:5: one of the keys name, context, expect \(did you mean "context"\?\), got the key "contxt"$/);
  t.match(err, /broken\.tests\.yaml:9:23: expect\.action of allow, notify, step_up, block, break_glass, got "permit"/);
  t.match(err, /broken\.tests\.yaml:9:37: expect\.rule as a rule id of the policy or "default" \(did you mean "clinicians-allow"\?\), got "clinicians-alow"/);
  t.match(err, /broken\.tests\.yaml:11:22: a number from 0 to 1, got 3/);
  t.match(err, /broken\.tests\.yaml:11:31: a time as an ISO 8601 date-time/);
  t.match(err, /broken\.tests\.yaml:11:63: session, bearer or mtls, got "kerberos"/);
});

t.test('missing policy and missing tests reported', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'orphan.tests.yaml'), 'version: 1\npolicy: nowhere.yaml\ncases:\n  - { expect: { action: allow } }\n');

  const orphan = await run([dir]);
  t.equal(orphan.code, 1);
  t.match(orphan.err, /^ERROR policy file .*nowhere\.yaml: expected a readable file, got ENOENT/m);

  const empty = await tempDir(t);
  const none = await run([empty]);
  t.equal(none.code, 1);
  t.match(none.err, /no \*\.tests\.yaml files found/);

  const missing = await run([join(empty, 'absent')]);
  t.equal(missing.code, 1);
  t.match(missing.err, /path not found/);
});

t.test('broken policy under test reported', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'p.yaml'), 'version: 1\nrules:\n  - id: a\n    acton: allow\n');
  await writeFile(join(dir, 'p.tests.yaml'), 'version: 1\npolicy: p.yaml\ncases:\n  - { expect: { action: allow } }\n');

  const { code, err } = await run([dir]);

  t.equal(code, 1);
  t.match(err, /^ERROR .*p\.yaml:4:5: rule a: one of the keys .* \(did you mean "action"\?\), got "acton" \[WG_POLICY_UNKNOWN_KEY\]$/m);
});
