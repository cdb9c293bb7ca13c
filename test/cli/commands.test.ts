import { PassThrough } from 'node:stream';
import t from 'tap';
import { runCli } from '../../proxy/cli/commands.ts';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (chunk: Buffer) => (chunks.out += chunk.toString()));
  err.on('data', (chunk: Buffer) => (chunks.err += chunk.toString()));
  const code = await runCli(argv, out, err);
  return { code, ...chunks };
}

const helpCases: [string[], RegExp][] = [
  [['--help'], /^Usage: wardgate <command>/],
  [['demo', '--help'], /^Usage: wardgate demo/],
  [['start', '--help'], /^Usage: wardgate start --config FILE/],
  [['certs', 'dev', '--help'], /wardgate certs dev/],
  [['policy', 'validate', '--help'], /^Usage: wardgate policy validate FILE/],
];

for (const [argv, usage] of helpCases) {
  t.test(`help for ${argv.join(' ')}`, async (t) => {
    const result = await run(argv);
    t.equal(result.code, 0);
    t.match(result.out, usage);
    t.equal(result.err, '');
  });
}

const badCases: [string[], RegExp][] = [
  [[], /^$/],
  [['serve'], /^wardgate: unknown command "serve"; run "wardgate --help"/],
  [['start'], /^wardgate: missing --config FILE/],
  [['start', '--config'], /^wardgate: option --config needs a value/],
  [['start', '--cfg', 'x.yaml'], /^wardgate: unknown option --cfg/],
  [['demo', '--port', 'abc'], /^wardgate: invalid --port "abc"; expected a port number from 1 to 65535/],
  [['demo', 'extra'], /^wardgate: unexpected argument "extra"/],
  [['certs'], /^wardgate: unknown certs subcommand ""; expected "certs dev"/],
  [['policy'], /^wardgate: unknown policy subcommand ""/],
  [['policy', 'validate'], /^wardgate: missing policy file/],
];

for (const [argv, reason] of badCases) {
  t.test(`bad arguments: ${argv.join(' ') || '(none)'}`, async (t) => {
    const result = await run(argv);
    t.equal(result.code, 2);
    t.match(result.err, reason);
    t.ok(result.err.split('\n').filter(Boolean).length <= 1, 'the reason is one line');
  });
}

t.test('start with a missing config file', async (t) => {
  const result = await run(['start', '--config', '/nonexistent/wardgate.yaml']);
  t.equal(result.code, 1);
  t.match(result.err, /\/nonexistent\/wardgate\.yaml:1:1: \(file\): cannot read the configuration file \(ENOENT\)/);
});
