import { spawn } from 'node:child_process';

import t from 'tap';

const MODULE = new URL('../../proxy/cli/until-stopped.ts', import.meta.url).href;

/** Runs a script that waits with untilStopped, then closes for 50 ms as a service would (running `duringClose` first), and exits with its code. */
function runWaiter(trigger: string, duringClose = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `
    import { untilStopped } from ${JSON.stringify(MODULE)};
    const stopping = untilStopped(process.stderr);
    // A running service's sockets keep the process alive; signal listeners alone do not.
    const service = setInterval(() => {}, 1000);
    ${trigger}
    await stopping.stopped;
    clearInterval(service);
    ${duringClose}
    await new Promise((resolve) => setTimeout(resolve, 50));
    process.stdout.write('closed\\n');
    process.exitCode = stopping.exitCode();
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('uncaught error: close, then exit 1', async (t) => {
  const result = await runWaiter(`setTimeout(() => { throw new Error('upstream parser blew up'); }, 10);`);

  t.equal(result.code, 1);
  t.equal(result.stdout, 'closed\n', 'the caller closed the service');
  t.match(result.stderr, /^wardgate: unexpected error; closing the audit trail and stopping with exit code 1\. Restart Wardgate and report this error: Error: upstream parser blew up/);
});

t.test('unhandled rejection: close, then exit 1', async (t) => {
  const result = await runWaiter(`setTimeout(() => { Promise.reject(new Error('lost promise')); }, 10);`);

  t.equal(result.code, 1);
  t.equal(result.stdout, 'closed\n');
  t.match(result.stderr, /report this error: Error: lost promise/);
});

t.test('SIGTERM: close, then exit 0', async (t) => {
  const result = await runWaiter(`setTimeout(() => process.kill(process.pid, 'SIGTERM'), 10);`);

  t.equal(result.code, 0);
  t.equal(result.stdout, 'closed\n');
  t.equal(result.stderr, '');
});

t.test('second error while closing: close, then exit 1', async (t) => {
  const result = await runWaiter(`setTimeout(() => { throw new Error('first'); }, 10);`, `setTimeout(() => { throw new Error('second'); }, 5);`);

  t.equal(result.code, 1);
  t.equal(result.stdout, 'closed\n', 'the close finished');
  t.match(result.stderr, /another unexpected error while closing; still closing: Error: second/);
});

t.test('error after SIGTERM: close, then exit 1', async (t) => {
  const result = await runWaiter(`setTimeout(() => process.kill(process.pid, 'SIGTERM'), 10);`, `setTimeout(() => { throw new Error('during close'); }, 5);`);

  t.equal(result.code, 1);
  t.equal(result.stdout, 'closed\n', 'the close finished');
  t.match(result.stderr, /unexpected error; closing the audit trail.*Error: during close/);
});
