import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { runPolicyValidate } from '../../policy/cli/validate.ts';
import { CapturedOutput } from './helpers.ts';

const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
await mkdir(dir);
t.teardown(() => rm(dir, { recursive: true, force: true }));

const RULE = 'version: 1\nrules:\n  - id: r1\n';

/** One file per error class: its content and the exact first line `validate` prints for it (after the file name). */
const CASES: Array<[string, string | Buffer, string]> = [
  ['WG_POLICY_FILE_TOO_LARGE', `# ${'x'.repeat(1024 * 1024)}\n`, ':1:1: a file of at most 1048576 bytes, got 1048577 bytes [WG_POLICY_FILE_TOO_LARGE]'],
  ['WG_POLICY_INVALID_ENCODING', Buffer.concat([Buffer.from('version: 1\nrules: [] # caf'), Buffer.from([0xe9]), Buffer.from('\n')]), ':2:16: UTF-8 text, got byte 0xe9 at byte offset 26 [WG_POLICY_INVALID_ENCODING]'],
  ['WG_POLICY_YAML_SYNTAX', 'version: 1\nrules: [\n', ':3:1: valid YAML, got '],
  ['WG_POLICY_DUPLICATE_KEY', 'version: 1\nversion: 1\nrules: []\n', ':2:1: each key at most once in a mapping, got Map keys must be unique (DUPLICATE_KEY) [WG_POLICY_DUPLICATE_KEY]'],
  ['WG_POLICY_ALIAS_LIMIT', `version: 1\nrules:\n  - { id: r, action: allow, match: { groups: &g [a] } }\n${Array.from({ length: 120 }, (_, i) => `  - { id: r${i}, action: allow, match: { groups: *g } }`).join('\n')}\n`, 'at most 100 alias references, got more [WG_POLICY_ALIAS_LIMIT]'],
  ['WG_POLICY_UNKNOWN_KEY', `${RULE}    action: allow\n    mach: {}\n`, ':5:5: rule r1: one of the keys id, description, match, when, action, reason, step_up, break_glass in rule #1 (did you mean "match"?), got "mach" [WG_POLICY_UNKNOWN_KEY]'],
  ['WG_POLICY_MISSING_KEY', `${RULE}    match: {}\n`, ':3:5: rule r1: the key "action" in rule #1, got no such key [WG_POLICY_MISSING_KEY]'],
  ['WG_POLICY_WRONG_TYPE', `${RULE}    action: allow\n    match: { authenticated: "yes" }\n`, ':5:29: rule r1: match.authenticated as true or false, got the string "yes" [WG_POLICY_WRONG_TYPE]'],
  ['WG_POLICY_INVALID_VALUE', `${RULE}    action: alow\n`, ':4:13: rule r1: action allow, notify, step_up, block or break_glass (did you mean "allow"?), got "alow" [WG_POLICY_INVALID_VALUE]'],
  ['WG_POLICY_DUPLICATE_ID', `${RULE}    action: allow\n  - id: r1\n    action: block\n`, ':5:5: rule r1: a rule id not used before (first used at line 3), got "r1" again [WG_POLICY_DUPLICATE_ID]'],
  ['WG_POLICY_CEL_SYNTAX', `${RULE}    action: allow\n    when: "risk >= "\n`, ':5:17: rule r1: a valid CEL expression, got '],
  ['WG_POLICY_CEL_TYPE', `${RULE}    action: allow\n    when: "risk == 'high'"\n`, ':5:16: rule r1: '],
  ['WG_POLICY_CEL_COST', `${RULE}    action: allow\n    when: "[1, 2].all(a, [1, 2].all(b, [1, 2].all(c, [1, 2].all(d, true))))"\n`, ':5:12: rule r1: macros (all, exists, exists_one, map, filter) nested at most 3 deep; '],
  ['WG_POLICY_CONDITION_CYCLE', 'version: 1\nconditions:\n  a: "conditions.b"\n  b: "conditions.a"\nrules: []\n', ':3:7: rule conditions.a: conditions that do not refer to themselves through other conditions, got the cycle a -> b -> a [WG_POLICY_CONDITION_CYCLE]'],
];

for (const [code, content, expected] of CASES) {
  t.test(`validate reports ${code}`, async (t) => {
    const file = join(dir, `${code}.yaml`);
    await writeFile(file, content);
    const out = new CapturedOutput();
    const err = new CapturedOutput();

    const exit = await runPolicyValidate([file], out, err);

    t.equal(exit, 1);
    t.equal(out.text, '');
    const first = err.text.split('\n')[0]!;
    t.ok(first.startsWith(file), `starts with the file name: ${first}`);
    t.ok(first.slice(file.length).includes(expected), `contains ${JSON.stringify(expected)}: ${first}`);
    t.match(err.text, new RegExp(`\\[${code}\\]`));
    t.match(first, /^[^:]+:\d+:\d+: /, 'file:line:column prefix');
  });
}

t.test('every problem of a file in one run', async (t) => {
  const file = join(dir, 'many.yaml');
  await writeFile(file, `version: 2
rules:
  - id: a
    action: permit
  - id: b
    action: allow
    match: { networks: ["10.0.0.0/40"], time: { hours: "9-17" } }
    when: "risk > 'x'"
`);
  const err = new CapturedOutput();

  t.equal(await runPolicyValidate([file], new CapturedOutput(), err), 1);
  const lines = err.text.trim().split('\n');
  t.equal(lines.length, 5, err.text);
  t.match(lines[0], /:1:10: version 1, the only policy format version this Wardgate reads, got 2/);
  t.match(lines[1], /:4:13: rule a: action allow, notify/);
  t.match(lines[2], /:7:25: rule b: a CIDR block such as 10\.0\.0\.0\/8 or 2001:db8::\/32 with a prefix length from 0 to 32, got "10\.0\.0\.0\/40"/);
  t.match(lines[3], /:7:56: rule b: hours as "HH:MM-HH:MM"/);
  t.match(lines[4], /:8:\d+: rule b: /);
});
