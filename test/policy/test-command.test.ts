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

const QUERY_POLICY = `version: 1
rules:
  - id: demographic-search
    when: 'request.path == "/fhir/Patient" && request.query_params.exists(p, p in ["name", "family", "given", "birthdate"])'
    action: notify
  - id: rest
    action: allow
`;

t.test('query_params in test contexts', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'search.yaml'), QUERY_POLICY);
  await writeFile(join(dir, 'search.tests.yaml'), `version: 1
policy: search.yaml
defaults:
  time: "2025-01-06T10:00:00Z"
  principal: { groups: [clinicians] }
  request: { path: /fhir/Patient }
cases:
  - name: search by family name
    context: { request: { query_params: [family, _count] } }
    expect: { action: notify, rule: demographic-search }
  - name: search by id
    context: { request: { query_params: [_id] } }
    expect: { action: allow, rule: rest }
  - name: no query_params key
    expect: { action: allow, rule: rest }
  - name: empty list
    context: { request: { query_params: [] } }
    expect: { action: allow, rule: rest }
`);

  const { code, out, err } = await run([dir]);

  t.equal(err, '');
  t.equal(code, 0);
  t.match(out, /^PASS .*search\.tests\.yaml: search by family name$/m);
  t.match(out, /^PASS .*search\.tests\.yaml: search by id$/m);
  t.match(out, /^PASS .*search\.tests\.yaml: no query_params key$/m);
  t.match(out, /^PASS .*search\.tests\.yaml: empty list$/m);
  t.match(out, /^4 passed, 0 failed$/m);
});

t.test('query_params defaults apply to cases', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'search.yaml'), QUERY_POLICY);
  await writeFile(join(dir, 'search.tests.yaml'), `version: 1
policy: search.yaml
defaults:
  time: "2025-01-06T10:00:00Z"
  request: { path: /fhir/Patient, query_params: [given] }
cases:
  - name: default names
    expect: { action: allow, rule: rest }
`);

  const { code, out } = await run([dir]);

  t.equal(code, 1, 'the default [given] makes the rule match, so the case fails');
  t.match(out, /^FAIL .*search\.tests\.yaml:7:5: default names: expected allow by rule rest, got notify by rule demographic-search/m);
});

t.test('bad query_params name path, value and fix', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'search.yaml'), QUERY_POLICY);
  const tooMany = Array.from({ length: 33 }, (_, index) => `p${index}`).join(', ');
  await writeFile(join(dir, 'bad.tests.yaml'), `version: 1
policy: search.yaml
defaults:
  time: "2025-01-06T10:00:00Z"
cases:
  - name: raw query string
    context: { request: { query_params: "family=Smith" } }
    expect: { action: allow }
  - name: entries
    context: { request: { query_params: [name:contains, 7, "", family, family] } }
    expect: { action: allow }
  - name: too many
    context: { request: { query_params: [${tooMany}] } }
    expect: { action: allow }
`);

  const { code, out, err } = await run([dir]);

  t.equal(code, 1);
  t.notMatch(out, /^PASS/m, 'no case with a bad context runs');
  t.match(err, /bad\.tests\.yaml:7:41: request\.query_params as a list of query parameter names such as \[family, given\], got "family=Smith"$/m);
  t.match(err, /bad\.tests\.yaml:10:42: request\.query_params entries without FHIR modifiers, as the proxy passes them: write "name", got "name:contains"$/m);
  t.match(err, /bad\.tests\.yaml:10:57: request\.query_params entries as non-empty strings, got 7$/m);
  t.match(err, /bad\.tests\.yaml:10:60: request\.query_params entries as non-empty strings, got ""$/m);
  t.match(err, /bad\.tests\.yaml:10:72: each name once in request\.query_params, because the proxy removes duplicates, got "family"$/m);
  t.match(err, /bad\.tests\.yaml:13:\d+: at most 32 names in request\.query_params, because the proxy drops the rest; remove this name and the ones after it, got "p32"$/m);
  t.equal(err.split('\n').filter((line) => line.includes('request.query_params')).length, 6, 'one error per bad value');
});
