import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import t from 'tap';

const CLI = fileURLToPath(new URL('../../proxy/cli/wardgate.ts', import.meta.url));

t.test('closed stdout pipe: quiet exit', async (t) => {
  // `wardgate policy test` writes one line per case, so it keeps writing after the reader has gone.
  const child = spawn(process.execPath, [CLI, 'policy', 'test', 'policy/examples/'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));

  t.equal(code, 0, 'the command ends with its own exit code');
  t.notMatch(stderr, /EPIPE|Unhandled 'error' event/, 'no stack trace');
});
