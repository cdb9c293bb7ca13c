import { closeSync, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { runCli } from '../../proxy/cli/commands.ts';
import { formatSummary, summarize } from '../../scorer/evaluation/metrics.ts';

const KEY = 'ab'.repeat(32);
const DAY = 86_400_000;
const MINUTE = 60_000;
const MONDAY = Date.UTC(2025, 2, 3);
const WARD_PC = '10.20.1.17';
const BROWSER = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/133.0';

async function run(argv: string[], env: Record<string, string | undefined> = { WARDGATE_PATIENT_KEY: KEY }) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete process.env[name];
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (chunk: Buffer) => (chunks.out += chunk.toString()));
  err.on('data', (chunk: Buffer) => (chunks.err += chunk.toString()));
  try {
    const code = await runCli(argv, out, err);
    return { code, ...chunks };
  } finally {
    process.env = saved;
  }
}

function record(time: number, path: string, overrides: Record<string, unknown> = {}) {
  return {
    time: new Date(time).toISOString(),
    user: 'demo-physician',
    groups: ['physicians', 'clinicians'],
    ip: WARD_PC,
    user_agent: BROWSER,
    method: 'GET',
    host: 'ehr.localhost',
    path,
    status: 200,
    bytes: 1800,
    label: 'benign',
    ...overrides,
  };
}

/** Nine ordinary ward days of one physician, then a stolen-account burst at 03:00 from outside. */
function accessLog(): Record<string, unknown>[] {
  const records: Record<string, unknown>[] = [];
  for (let day = 0; day < 9; day++) {
    let time = MONDAY + day * DAY + 8 * 60 * MINUTE;
    for (let visit = 0; visit < 10; visit++) {
      const patient = `p-${String(1 + ((visit * 7 + day * 3) % 20)).padStart(4, '0')}`;
      records.push(record(time, `/fhir/Patient/${patient}`));
      records.push(record(time + 30_000, `/fhir/Observation?patient=${patient}`));
      time += 30 * MINUTE;
    }
  }
  const start = MONDAY + 9 * DAY + 3 * 60 * MINUTE;
  for (let i = 0; i < 30; i++) {
    records.push(record(start + i * 5_000, `/fhir/Patient/p-${String(100 + i).padStart(4, '0')}`, {
      ip: '203.0.113.66', user_agent: 'curl/8.5.0', label: 'misuse', episode: 'stolen-1',
    }));
  }

  return records;
}

function writeLog(dir: string, records: Record<string, unknown>[], extraLines: string[] = []): string {
  const file = join(dir, 'access.jsonl');
  // Written newest first, so the test also checks that replay sorts by time.
  const lines = [...records].reverse().map((entry) => JSON.stringify(entry));
  writeFileSync(file, [...extraLines, ...lines].join('\n') + '\n');
  return file;
}

t.test('replay decides a labelled log and prints the summary', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog());

  const result = await run(['replay', file]);
  t.equal(result.code, 0, result.err);
  t.equal(result.err, '');

  const lines = result.out.trim().split('\n');
  const summaryLine = lines.pop()!;
  const decisions = lines.map((line) => JSON.parse(line));
  t.equal(decisions.length, 210);

  const times = decisions.map((decision) => Date.parse(decision.time));
  t.same(times, [...times].sort((a, b) => a - b), 'decisions come in time order');
  t.same(Object.keys(decisions[0]).sort(), ['action', 'label', 'line', 'reasons', 'risk', 'route', 'rule', 'time', 'top', 'user'].sort());
  t.equal(decisions[0].route, 'ehr');

  const lastBenignDay = decisions.filter((decision) => decision.label === 'benign' && Date.parse(decision.time) >= MONDAY + 8 * DAY);
  t.equal(lastBenignDay.length, 20);
  t.ok(lastBenignDay.every((decision) => decision.action === 'allow'), 'an ordinary day after warm-up is allowed');

  const episode = decisions.filter((decision) => decision.episode === 'stolen-1');
  t.equal(episode.length, 30);
  t.ok(episode.slice(0, 5).some((decision) => decision.action !== 'allow'), 'the stolen account is flagged within five requests');
  t.ok(episode.at(-1).risk >= 0.6, `the burst ends with a high risk (${episode.at(-1).risk})`);
  t.ok(episode.at(-1).top.length > 0, 'top features are listed');

  const expected = formatSummary(summarize(decisions.map((decision) => ({ ...decision, time: Date.parse(decision.time) }))));
  t.equal(summaryLine, expected);
  t.match(summaryLine, /^records=210 episodes=1 episode_recall=1\.0000 /);
});

t.test('replay reports invalid lines and goes on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = accessLog().slice(0, 4);
  const file = writeLog(dir, good, [
    '{"time": "yesterday"}',
    'not json',
    JSON.stringify({ ...record(MONDAY, '/fhir/Patient/p-0001'), status: 'ok' }),
    JSON.stringify({ ...record(MONDAY, '/fhir/Patient/p-0001'), groups: 'physicians' }),
    JSON.stringify({ ...record(MONDAY, '/fhir/Patient/p-0001'), label: 'bad' }),
    JSON.stringify(record(MONDAY, '/fhir/%2FPatient')),
    JSON.stringify(record(MONDAY, '/fhir/Patient/p-0061?subject=x%20y')),
    '',
  ]);

  const result = await run(['replay', file]);
  t.equal(result.code, 1);
  const errors = result.err.trim().split('\n');
  t.match(errors[0], /^wardgate replay: line 1: field "time": expected an ISO 8601 time with a zone/);
  t.match(errors[1], /^wardgate replay: line 2: invalid JSON/);
  t.match(errors[2], /^wardgate replay: line 3: field "status": expected an integer from 100 to 599, received "ok"/);
  t.match(errors[3], /^wardgate replay: line 4: field "groups": expected an array of strings/);
  t.match(errors[4], /^wardgate replay: line 5: field "label": expected "benign" or "misuse", received "bad"/);
  t.match(errors[5], /^wardgate replay: line 6: skipped: path rejected .* \(WG_HTTP_BAD_PATH\)/);
  t.match(errors[6], /^wardgate replay: line 7: skipped: path rejected .* \(WG_HTTP_INVALID_PATIENT_ID\): Invalid patient id in the search parameter subject/);
  t.notMatch(result.err, /fail mode/, 'an invalid patient id is no scorer outage');
  t.equal(errors.length, 7);
  t.equal(result.out.trim().split('\n').length, 5, 'four decisions and the summary');
});

t.test('replay stops when too many lines are invalid', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 3), ['x', 'y', 'z']);

  const result = await run(['replay', file, '--max-errors', '2']);
  t.equal(result.code, 1);
  t.match(result.err, /more than --max-errors 2 invalid lines by line 3; reading stopped and nothing was decided/);
  t.equal(result.out, '');
});

t.test('replay stops reading a file of invalid lines early', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // 200,000 invalid lines: before, every one was kept as an error before the count was checked.
  const file = join(dir, 'noise.jsonl');
  writeFileSync(file, 'x\n'.repeat(200_000));

  const result = await run(['replay', file]);
  t.equal(result.code, 1);
  t.match(result.err, /more than --max-errors 100 invalid lines by line 101; reading stopped/);
  t.equal(result.err.split('\n').filter((line) => line.includes(': line ')).length, 101, 'only the first 101 invalid lines are reported');
});

t.test('replay writes --out atomically and without labels prints no summary', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const unlabelled = accessLog().slice(0, 6).map(({ label: _label, ...rest }) => rest);
  const file = writeLog(dir, unlabelled);
  const outFile = join(dir, 'decisions.jsonl');

  const result = await run(['replay', file, '--out', outFile]);
  t.equal(result.code, 0, result.err);
  t.equal(result.out, '');
  const lines = readFileSync(outFile, 'utf8').trim().split('\n');
  t.equal(lines.length, 6);
  t.ok(lines.every((line) => !('label' in JSON.parse(line))));
  t.notOk(existsSync(`${outFile}.${process.pid}.tmp`));
});

t.test('replay with --out also prints the summary on standard error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 6));
  const outFile = join(dir, 'decisions.jsonl');

  const result = await run(['replay', file, '--out', outFile]);
  const lastLine = readFileSync(outFile, 'utf8').trim().split('\n').pop()!;
  t.match(lastLine, /^records=6 /, 'the file ends with the summary');
  t.equal(result.out, '', 'nothing on standard output');
  t.ok(result.err.includes(`${lastLine}\n`), 'the same summary on standard error');
});

t.test('replay usage errors', async (t) => {
  t.match((await run(['replay'])).err, /^wardgate: missing access log FILE/);
  t.equal((await run(['replay'])).code, 2);
  t.match((await run(['replay', 'a', 'b'])).err, /^wardgate: unexpected argument "b"/);
  t.match((await run(['replay', 'a', '--max-errors', '-1'])).err, /^wardgate: invalid --max-errors "-1"/);
  t.match((await run(['replay', '--help'])).out, /^Usage: wardgate replay FILE/);

  const missing = await run(['replay', '/nonexistent/access.jsonl']);
  t.equal(missing.code, 1);
  t.match(missing.err, /cannot open \/nonexistent\/access.jsonl \(ENOENT\)/);

  const noKey = await run(['replay', '/nonexistent/access.jsonl', '--redis', 'redis://127.0.0.1:6379'], { WARDGATE_PATIENT_KEY: undefined });
  t.equal(noKey.code, 1);
  t.match(noKey.err, /--redis needs a stable patient key/);
});

t.test('replay reads --config without the OIDC secret', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 5));
  const policy = new URL('../../policy/examples/demo.yaml', import.meta.url).pathname;
  const model = new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname;
  const config = join(dir, 'wardgate.yaml');
  writeFileSync(config, [
    'tls: { cert: cert.pem, key: key.pem }',
    'oidc: { issuer: https://idp.test, client_id: wardgate, client_secret_env: REPLAY_TEST_UNSET_SECRET }',
    `policy: ${policy}`,
    `model: ${model}`,
    'patient_key_env: REPLAY_TEST_KEY',
    'routes:',
    '  - { id: ehr, host: ehr.localhost, upstream: "http://127.0.0.1:9" }',
  ].join('\n'));
  const panel = join(dir, 'panel.yaml');
  writeFileSync(panel, 'practitioners:\n  demo-physician: [p-0001]\n');

  const result = await run(['replay', file, '--config', config, '--care-panel', panel], { REPLAY_TEST_KEY: KEY, WARDGATE_PATIENT_KEY: undefined });
  t.equal(result.code, 0, result.err);
  t.equal(result.err, '');
  const decisions = result.out.trim().split('\n').slice(0, -1).map((line) => JSON.parse(line));
  t.equal(decisions.length, 5);
  t.ok(decisions.every((decision) => decision.route === 'ehr'));

  const badPanel = join(dir, 'bad-panel.yaml');
  writeFileSync(badPanel, 'practitioners: [x]\n');
  const failed = await run(['replay', file, '--config', config, '--care-panel', badPanel], { REPLAY_TEST_KEY: KEY });
  t.equal(failed.code, 1);
  t.match(failed.err, /wardgate replay: WG_CARE_PANEL_INVALID: Invalid care panel .*bad-panel\.yaml: practitioners: expected a mapping/);

  const missing = await run(['replay', file, '--config', config, '--care-panel', join(dir, 'missing.yaml')], { REPLAY_TEST_KEY: KEY });
  t.equal(missing.code, 1);
  t.match(missing.err, /WG_CARE_PANEL_NOT_FOUND: Cannot read the care panel file .*missing\.yaml \(ENOENT\); check --care-panel\./, 'the message names the option');
});

t.test('replay takes the floor settings from --config', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Eight days on one patient, whom the history explains after the first day, then three
  // patients nothing explains: the floor decides them.
  const records: Record<string, unknown>[] = [];
  for (let day = 0; day < 8; day++) {
    for (let minute = 0; minute < 10; minute++) records.push(record(MONDAY + day * DAY + (9 * 60 + minute) * MINUTE, '/fhir/Patient/p-0001'));
  }
  for (const [index, patient] of ['p-0101', 'p-0102', 'p-0103'].entries()) {
    records.push(record(MONDAY + 8 * DAY + (10 * 60 + index) * MINUTE, `/fhir/Patient/${patient}`));
  }
  const file = writeLog(dir, records);
  const configWith = (floor: string) => {
    const config = join(dir, `wardgate-${floor === '' ? 'default' : 'off'}.yaml`);
    writeFileSync(config, [
      'tls: { cert: cert.pem, key: key.pem }',
      'oidc: { issuer: https://idp.test, client_id: wardgate }',
      `policy: ${new URL('../../policy/examples/demo.yaml', import.meta.url).pathname}`,
      `model: ${new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname}`,
      'routes:',
      '  - { id: ehr, host: ehr.localhost, upstream: "http://127.0.0.1:9" }',
      floor,
    ].join('\n'));
    return config;
  };
  const lastRisk = async (config: string) => {
    const result = await run(['replay', file, '--config', config]);
    t.equal(result.code, 0, result.err);
    const decisions = result.out.trim().split('\n').slice(0, -1).map((line) => JSON.parse(line));
    return decisions.at(-1).risk as number;
  };

  const withFloor = await lastRisk(configWith(''));
  const withoutFloor = await lastRisk(configWith('scorer: { unexplained_floor: { usual_limit: 0 } }'));

  t.ok(withFloor >= 0.6, `the default floor flags the third unexplained patient (${withFloor})`);
  t.ok(withoutFloor < 0.6, `usual_limit 0 turns the floor off (${withoutFloor})`);
});

t.test('replay takes patient_paths from --config', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Eight days on one patient's HTML page, then the pages of three patients nothing explains.
  // The first record has an id that is not a FHIR id.
  const records: Record<string, unknown>[] = [record(MONDAY + 8 * 60 * MINUTE, '/patients/x%20y')];
  for (let day = 0; day < 8; day++) {
    for (let minute = 0; minute < 10; minute++) records.push(record(MONDAY + day * DAY + (9 * 60 + minute) * MINUTE, '/patients/p-0001'));
  }
  for (const [index, patient] of ['p-0101', 'p-0102', 'p-0103'].entries()) {
    records.push(record(MONDAY + 8 * DAY + (10 * 60 + index) * MINUTE, `/patients/${patient}`));
  }
  const file = writeLog(dir, records);
  const configWith = (name: string, scorer: string) => {
    const config = join(dir, `wardgate-${name}.yaml`);
    writeFileSync(config, [
      'tls: { cert: cert.pem, key: key.pem }',
      'oidc: { issuer: https://idp.test, client_id: wardgate }',
      `policy: ${new URL('../../policy/examples/demo.yaml', import.meta.url).pathname}`,
      `model: ${new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname}`,
      'routes:',
      '  - { id: ehr, host: ehr.localhost, upstream: "http://127.0.0.1:9" }',
      scorer,
    ].join('\n'));
    return config;
  };

  const withPaths = await run(['replay', file, '--config', configWith('pages', "scorer: { patient_paths: ['/patients/{id}'] }")]);
  const withoutPaths = await run(['replay', file, '--config', configWith('default', '')]);
  const decisionsOf = (out: string) => out.trim().split('\n').slice(0, -1).map((line) => JSON.parse(line));
  const withDecisions = decisionsOf(withPaths.out);
  const withoutDecisions = decisionsOf(withoutPaths.out);

  t.equal(withPaths.code, 1, 'the invalid id is skipped, so the exit status is 1');
  t.match(withPaths.err, /line \d+: skipped: path rejected as the live proxy would reject it with 400 \(WG_HTTP_INVALID_PATIENT_ID\): Invalid patient id in the path segment at \{id\} of \/patients\/\{id\}/);
  t.equal(withDecisions.length, 83);
  t.ok(withDecisions.at(-1).risk >= 0.6, `the pages name the unexplained patients, so the floor flags the third (${withDecisions.at(-1).risk})`);
  t.equal(withoutPaths.code, 0, withoutPaths.err);
  t.equal(withoutDecisions.length, 84, 'without the setting the invalid id names no patient and is decided');
  t.ok(withoutDecisions.at(-1).risk < 0.6, `without the setting the pages name no patient (${withoutDecisions.at(-1).risk})`);
});

t.test('replay with a custom --policy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, 'version: 1\nrules:\n  - id: allow-all\n    match: { authenticated: true }\n    action: allow\n');
  const file = writeLog(dir, [record(MONDAY, '/fhir/Patient/p-0001')]);

  const result = await run(['replay', file, '--policy', policy]);
  t.equal(result.code, 0, result.err);
  t.match(JSON.parse(result.out.split('\n')[0]!), { action: 'allow', rule: 'allow-all', route: 'ehr' });
});

t.test('replay names a short patient key and a folder given as --out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 2));

  const shortKey = await run(['replay', file], { WARDGATE_PATIENT_KEY: 'abcd' });
  t.match(shortKey.err, /WARDGATE_PATIENT_KEY is shorter than 32 bytes of hex or base64; using a random patient key/);

  const folderOut = await run(['replay', file, '--out', dir]);
  t.equal(folderOut.code, 1);
  t.match(folderOut.err, new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is a folder \\(EISDIR\\); give a file name`));
});

t.test('replay skips a line above the string limit and prints the summary', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'access.jsonl');
  const [first, ...rest] = accessLog().slice(0, 4).map((entry) => JSON.stringify(entry));
  // Line 2 is 600 MiB of zero bytes in a sparse file: more than V8's maximum string length
  // (2^29 - 24 characters), so it cannot be held as one string.
  const hugeLine = 600 * 1024 * 1024;
  const head = Buffer.from(`${first}\n`);
  const descriptor = openSync(file, 'w');
  writeSync(descriptor, head, 0, head.length, 0);
  writeSync(descriptor, `\n${rest.join('\n')}\n`, head.length + hugeLine);
  closeSync(descriptor);

  const result = await run(['replay', file]);

  t.equal(result.code, 1, 'a skipped line sets exit status 1');
  t.equal(result.err, `wardgate replay: line 2: expected at most 65536 bytes, received ${hugeLine} bytes\n`);
  const lines = result.out.trim().split('\n');
  t.equal(lines.length, 5, 'four decisions and the summary');
  t.match(lines.at(-1), /^records=4 episodes=0 /);
});

t.test('replay checks the --out folder before deciding', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 2), ['not json']);
  const outFile = join(dir, 'missing', 'decisions.jsonl');

  const result = await run(['replay', file, '--out', outFile]);

  t.equal(result.code, 1);
  t.equal(result.err, `wardgate replay: cannot write --out ${outFile}: the folder ${join(dir, 'missing')} does not exist (ENOENT); create the folder or give another path\n`, 'no line was read, and the path is the one given');
  t.equal(result.out, '');
});

t.test('replay reads a byte order mark and names other encoding faults', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [first, second, third] = accessLog().slice(0, 3).map((entry) => JSON.stringify(entry));
  const file = join(dir, 'access.jsonl');
  writeFileSync(file, Buffer.concat([
    Buffer.from(`\uFEFF${first}\n`),
    Buffer.from(second!.replace('demo-physician', 'demo-\u0001'), 'utf8').map((byte) => (byte === 1 ? 0xff : byte)),
    Buffer.from(`\n${third!.replace('"bytes":1800', '"bytes":1e400')}\n`),
  ]));

  const result = await run(['replay', file]);

  t.equal(result.code, 1);
  t.equal(result.err.split('\n')[0], 'wardgate replay: line 2: the line is not valid UTF-8; save the access log as UTF-8');
  t.equal(result.err.split('\n')[1], 'wardgate replay: line 3: field "bytes": expected an integer from 0 to 9007199254740991, received a number too large to represent');
  t.equal(result.out.trim().split('\n').length, 2, 'the line after a byte order mark is decided, and the summary follows');
});

t.test('replay rejects a time before 1970 in the time field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, [record(MONDAY, '/fhir/Patient/p-0001', { time: '0000-03-03T09:00:00Z' })]);

  const result = await run(['replay', file]);

  t.equal(result.code, 1);
  t.equal(result.err, 'wardgate replay: line 1: field "time": "0000-03-03T09:00:00Z" is before 1970-01-01T00:00:00Z; expected an ISO 8601 time with a zone such as "2025-03-03T09:00:00Z"\n');
});

t.test('replay names an empty log and a folder given as FILE', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const empty = join(dir, 'empty.jsonl');
  writeFileSync(empty, '\n\n');

  const none = await run(['replay', empty]);
  t.equal(none.code, 1);
  t.equal(none.err, `wardgate replay: ${empty} contains no records; nothing was decided. Give a JSON Lines access log with one record per line\n`);

  const folder = await run(['replay', dir]);
  t.equal(folder.code, 1);
  t.equal(folder.err, `wardgate replay: ${dir} is a folder (EISDIR); give the access log FILE\n`);
});

t.test('replay does not replace a link or a FIFO given as --out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 2));
  const link = join(dir, 'link.jsonl');
  symlinkSync(join(dir, 'target.jsonl'), link);
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);

  const toLink = await run(['replay', file, '--out', link]);
  t.equal(toLink.code, 1);
  t.equal(toLink.err, `wardgate replay: cannot write --out ${link}: it is a symbolic link; give the path of the file it points to\n`);
  t.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link');

  const toFifo = await run(['replay', file, '--out', fifo]);
  t.equal(toFifo.code, 1);
  t.match(toFifo.err, /it is not a regular file \(a FIFO, socket or device\); give the path of a regular file/);
  t.ok(lstatSync(fifo).isFIFO(), 'the FIFO is still a FIFO');
});

t.test('replay ignores the status of browser icon requests', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ward = accessLog().slice(0, 60);
  const visit = (status: number, path: string) => Array.from({ length: 6 }, (_, index) => [
    record(MONDAY + 3 * DAY + 10 * 60 * MINUTE + index * MINUTE, path, { status, bytes: 200 }),
    record(MONDAY + 3 * DAY + 10 * 60 * MINUTE + index * MINUTE + 1_000, `/fhir/Patient/p-000${1 + index}`),
  ]).flat();
  const risks = async (extra: Record<string, unknown>[]) => {
    const result = await run(['replay', writeLog(dir, [...ward, ...extra])]);
    return result.out.trim().split('\n').slice(0, -1).map((line) => JSON.parse(line).risk as number);
  };

  const iconFound = await risks(visit(200, '/favicon.ico'));
  const iconMissing = await risks(visit(404, '/favicon.ico'));
  const pageMissing = await risks(visit(404, '/fhir/Basic/unknown'));

  t.same(iconMissing, iconFound, 'a missing favicon changes no risk');
  t.not(JSON.stringify(pageMissing), JSON.stringify(iconFound), 'the same number of 404s on another path does');
});

t.test('replay does not write through a link planted at a temporary name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 2));
  const out = join(dir, 'decisions.jsonl');
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'keep me\n');
  // The temporary name used to be FILE.<pid>.tmp, which another user could create in advance.
  symlinkSync(victim, `${out}.${process.pid}.tmp`);

  const result = await run(['replay', file, '--out', out]);

  t.equal(result.code, 0, result.err);
  t.equal(readFileSync(victim, 'utf8'), 'keep me\n', 'the link target is unchanged');
  t.ok(lstatSync(out).isFile(), 'FILE is a regular file');
  t.equal(readFileSync(out, 'utf8').trim().split('\n').length, 3, 'two decisions and the summary');
});

t.test('replay escapes control characters of an invalid line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeLog(dir, accessLog().slice(0, 1), ['\u001b[2J\u001b[Hnot json']);

  const result = await run(['replay', file]);

  t.equal(result.code, 1);
  t.notMatch(result.err, /\u001b/, 'no escape character reaches the terminal');
  t.match(result.err, /line 1: invalid JSON \(.*\\u001b\[2J/, 'the escape is shown as \\u001b');
});

t.test('replay names a UTF-16 log and a device', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const utf16 = join(dir, 'utf16.jsonl');
  writeFileSync(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${JSON.stringify(accessLog()[0])}\n`, 'utf16le')]));

  const wide = await run(['replay', utf16]);
  t.equal(wide.code, 1);
  t.equal(wide.err, `wardgate replay: ${utf16} is UTF-16 text; save the access log as UTF-8\n`);

  const device = await run(['replay', '/dev/zero']);
  t.equal(device.code, 1);
  t.equal(device.err, 'wardgate replay: /dev/zero is a device, not a file; give the access log FILE or pipe it into /dev/stdin\n');
});
