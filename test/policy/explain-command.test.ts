import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import t from 'tap';

import { runCli } from '../../proxy/cli/commands.ts';
import { runPolicyCommand } from '../../proxy/cli/policy-command.ts';
import { CapturedOutput } from './helpers.ts';

async function explain(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const out = new CapturedOutput();
  const err = new CapturedOutput();
  const code = await runPolicyCommand(['explain', ...argv], out, err, Readable.from([stdin]));
  return { code, out: out.text, err: err.text };
}

const DEMO = 'policy/examples/demo.yaml';

t.test('flags build the context and every rule is listed', async (t) => {
  const { code, out, err } = await explain(['--policy', DEMO, '--user', 'carl', '--groups', 'records', '--route', 'ehr', '--path', '/fhir/Observation/7', '--time', '2025-01-06T10:00:00Z']);
  const lines = out.split('\n');

  t.equal(err, '');
  t.equal(code, 0);
  t.match(lines[0], /^policy policy\/examples\/demo\.yaml \(sha256 [0-9a-f]{64}\), time zone UTC$/);
  t.match(out, /^ {2}1 {2}block-anonymous +no match: match\.authenticated is false, the request is authenticated$/m);
  t.match(out, /^ {2}2 {2}export-physicians-step-up +no match: groups \[records\] share none with match\.groups \[physicians\]$/m);
  t.match(out, /^ {2}4 {2}export-others-block +no match: path \/fhir\/Observation\/7 matches no pattern of match\.paths$/m);
  t.match(out, /^ {2}5 {2}block-very-high-risk +no match: when is false \(risk >= 0\.9 && !conditions\.explained_patient\)$/m);
  t.match(out, /^ {2}6 {2}records-no-observations +MATCHED$/m);
  t.match(out, /^ {2}7 {2}step-up-unusual +not tried \(an earlier rule decided\)$/m);
  t.match(out, /^ {2}8 {2}off-hours-records-step-up +not tried \(an earlier rule decided\)$/m);
  t.match(out, /^decision: block by rule records-no-observations$/m);
  t.match(out, /^reason: rule records-no-observations matched \(when conditions\.observation_read\): Records clerks may not read clinical observations\.$/m);
});

t.test('JSON context on stdin', async (t) => {
  const context = {
    principal: { subject: 'alice', groups: ['physicians'] },
    route: { id: 'ehr' },
    request: { path: '/fhir/Patient/3/$everything' },
    time: '2025-01-06T10:00:00Z',
  };
  const { code, out } = await explain(['--policy', DEMO], JSON.stringify(context));

  t.equal(code, 0);
  t.match(out, /^decision: step_up by rule export-physicians-step-up$/m);
  t.match(out, /^step-up: acr_values urn:wardgate:acr:mfa, max_age 0, ttl 900 s$/m);
});

t.test('groups mismatch and default decision', async (t) => {
  const { out } = await explain(['--policy', DEMO, '--user', 'vic', '--groups', 'visitors', '--route', 'ehr', '--time', '2025-01-06T10:00:00Z']);

  t.match(out, /clinicians-allow +no match: groups \[visitors\] share none with match\.groups \[clinicians\]$/m);
  t.match(out, /^decision: block by rule default$/m);
});

t.test('bad context values name the flag', async (t) => {
  const { code, err, out } = await explain(['--policy', DEMO, '--user', 'a', '--risk', 'high', '--time', 'noon', '--auth-method', 'kerberos']);

  t.equal(code, 1);
  t.equal(out, '');
  t.match(err, /^wardgate policy explain: --risk: expected a number from 0 to 1, got "high"$/m);
  t.match(err, /^wardgate policy explain: --time: expected a time as an ISO 8601 date-time/m);
  t.match(err, /^wardgate policy explain: --auth-method: expected session, bearer or mtls, got "kerberos"$/m);
});

t.test('invalid JSON and empty stdin rejected', async (t) => {
  const broken = await explain(['--policy', DEMO], '{"principal":');
  t.equal(broken.code, 1);
  t.match(broken.err, /stdin: expected a request context as JSON, got invalid JSON/);

  const empty = await explain(['--policy', DEMO], '');
  t.equal(empty.code, 1);
  t.match(empty.err, /got no input/);

  const typo = await explain(['--policy', DEMO], '{"principle": null, "time": 0}');
  t.equal(typo.code, 1);
  t.match(typo.err, /stdin\.principle: expected one of the keys principal, .* \(did you mean "principal"\?\), got the key "principle"/);
});

t.test('usage errors exit 2', async (t) => {
  const noPolicy = await explain(['--user', 'a']);
  t.equal(noPolicy.code, 2);
  t.match(noPolicy.err, /missing --policy FILE/);

  const unknown = await explain(['--policy', DEMO, '--colour', 'red']);
  t.equal(unknown.code, 2);
  t.match(unknown.err, /unknown option --colour/);

  const out = new CapturedOutput();
  t.equal(await runCli(['policy', 'explain', '--help'], out, new CapturedOutput()), 0);
  t.match(out.text, /^Usage: wardgate policy explain --policy FILE/);
});

t.test('invalid policy file reported', async (t) => {
  const { code, err } = await explain(['--policy', 'policy/examples/missing.yaml', '--user', 'a', '--time', '2025-01-06T10:00:00Z']);

  t.equal(code, 1);
  t.match(err, /policy file policy\/examples\/missing\.yaml: expected a readable file, got ENOENT/);
});

t.test('query params from flags and stdin', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wgtest-explain-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const policy = join(dir, 'search.yaml');
  await writeFile(policy, `version: 1
rules:
  - id: demographic-search
    when: 'request.path == "/fhir/Patient" && request.query_params.exists(p, p in ["name", "family", "given"])'
    action: notify
  - id: rest
    action: allow
`);

  const flags = await explain(['--policy', policy, '--user', 'alice', '--path', '/fhir/Patient', '--query-params', 'family,_count', '--time', '2025-01-06T10:00:00Z']);
  t.equal(flags.code, 0);
  t.match(flags.out, /^request GET \/fhir\/Patient with query parameters family, _count on route default by alice/m);
  t.match(flags.out, /^decision: notify by rule demographic-search$/m);

  const byId = await explain(['--policy', policy, '--user', 'alice', '--path', '/fhir/Patient', '--query-params', '_id', '--time', '2025-01-06T10:00:00Z']);
  t.match(byId.out, /^decision: allow by rule rest$/m);

  const none = await explain(['--policy', policy, '--user', 'alice', '--path', '/fhir/Patient', '--time', '2025-01-06T10:00:00Z']);
  t.match(none.out, /^request GET \/fhir\/Patient on route default/m, 'no query parameters shown without any');
  t.match(none.out, /^decision: allow by rule rest$/m);

  const stdin = await explain(['--policy', policy], JSON.stringify({ request: { path: '/fhir/Patient', query_params: ['given'] }, time: '2025-01-06T10:00:00Z' }));
  t.equal(stdin.code, 0);
  t.match(stdin.out, /^decision: notify by rule demographic-search$/m);
});

t.test('bad query params name the flag', async (t) => {
  const flag = await explain(['--policy', DEMO, '--query-params', 'name:contains', '--time', '2025-01-06T10:00:00Z']);
  t.equal(flag.code, 1);
  t.match(flag.err, /^wardgate policy explain: --query-params: expected request\.query_params entries without FHIR modifiers, as the proxy passes them: write "name", got "name:contains"$/m);

  const stdin = await explain(['--policy', DEMO], JSON.stringify({ request: { query_params: 'family' }, time: 0 }));
  t.equal(stdin.code, 1);
  t.match(stdin.err, /^wardgate policy explain: stdin\.request\.query_params: expected request\.query_params as a list of query parameter names such as \[family, given\], got "family"$/m);
});
