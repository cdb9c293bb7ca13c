import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import t from 'tap';

import { runPolicyTest } from '../../policy/cli/test-command.ts';
import { runPolicyCommand } from '../../proxy/cli/policy-command.ts';
import { CapturedOutput } from './helpers.ts';

const dir = join(tmpdir(), `wgtest-policy-${randomBytes(6).toString('hex')}`);
await mkdir(dir);
t.teardown(() => rm(dir, { recursive: true, force: true }));
await copyFile('policy/examples/demo.yaml', join(dir, 'demo.yaml'));

async function runFile(name: string, content: string | Buffer): Promise<{ code: number; out: string; err: string }> {
  const file = join(dir, name);
  await writeFile(file, content);
  const out = new CapturedOutput();
  const err = new CapturedOutput();
  const code = await runPolicyTest([file], out, err);
  return { code, out: out.text, err: err.text };
}

t.test('test file alias bomb rejected', async (t) => {
  const lines = ['version: 1', 'policy: demo.yaml', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 12; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
  lines.push('cases: []');

  const { code, err } = await runFile('bomb.tests.yaml', `${lines.join('\n')}\n`);

  t.equal(code, 1);
  t.match(err, /^ERROR .*bomb\.tests\.yaml:1:1: at most 100 alias references, got /m);
});

t.test('test file non-UTF-8 and truncation rejected', async (t) => {
  const bytes = await runFile('bytes.tests.yaml', Buffer.from([0x76, 0x3a, 0x20, 0xff, 0x0a]));
  t.equal(bytes.code, 1);
  t.match(bytes.err, /\[WG_POLICY_INVALID_ENCODING\]/);

  const cut = await runFile('cut.tests.yaml', 'version: 1\npolicy: demo.yaml\ncases:\n  - { name: x, expect: { action: [allow\n');
  t.equal(cut.code, 1);
  t.match(cut.err, /\[WG_POLICY_YAML_SYNTAX\]/);

  const scalar = await runFile('scalar.tests.yaml', '42\n');
  t.equal(scalar.code, 1);
  t.match(scalar.err, /a policy test file as a mapping .*got 42/);
});

t.test('test file huge and duplicate keys rejected', async (t) => {
  const huge = await runFile('huge.tests.yaml', `# ${'x'.repeat(1024 * 1024)}\n`);
  t.equal(huge.code, 1);
  t.match(huge.err, /\[WG_POLICY_FILE_TOO_LARGE\]/);

  const duplicate = await runFile('dup.tests.yaml', 'version: 1\npolicy: demo.yaml\npolicy: other.yaml\ncases: []\n');
  t.equal(duplicate.code, 1);
  t.match(duplicate.err, /\[WG_POLICY_DUPLICATE_KEY\]/);
});

t.test('test file with wrong types does not crash', async (t) => {
  const { code, err } = await runFile('types.tests.yaml', `version: 1
policy: demo.yaml
cases:
  - 7
  - name: x
    context: [1, 2]
    expect: { action: allow }
  - name: y
    context: { principal: { groups: 5 }, features: { a: x }, session: { age_s: -1 }, elevated_acr: 3, time: 0 }
    expect: allow
`);

  t.equal(code, 1);
  t.match(err, /a test case as a mapping .*got 7/);
  t.match(err, /a request context as a mapping, got a list/);
  t.match(err, /expect as a mapping with action/);
});

t.test('explain stdin limits', async (t) => {
  const run = async (input: string) => {
    const err = new CapturedOutput();
    const code = await runPolicyCommand(['explain', '--policy', 'policy/examples/demo.yaml'], new CapturedOutput(), err, Readable.from([input]));
    return { code, err: err.text };
  };

  const huge = await run(`{"x":"${'a'.repeat(1024 * 1024 + 10)}"}`);
  t.equal(huge.code, 1);
  t.match(huge.err, /at most 1048576 bytes, got more/);

  const deep = await run(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
  t.equal(deep.code, 1);
  t.match(deep.err, /expected a request context as a mapping, got a list|invalid JSON/);

  const array = await run('[]');
  t.equal(array.code, 1);
  t.match(array.err, /stdin: expected a request context as a mapping, got a list/);
});
