import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import t from 'tap';
import { Browser, rawRequest, signIn, startTestStack, type TestStack } from './support.ts';
import { freePort } from '../redis/servers.ts';
import { waitUntil } from '../wait.ts';

/** Starts a throwaway redis-server without persistence on `port` and waits until it answers. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const answers = await waitUntil(async () => {
    if (exited()) return true;
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  }, 30_000, 50);
  if (answers && !exited()) return child;
  child.kill('SIGKILL');
  throw new Error(exited() ? `redis-server exited at start on port ${port}, probably because another process took the port` : `redis-server on port ${port} did not answer PING within 30 s`);
}

async function untilStatus(stack: TestStack, cookie: string, expected: (status: number) => boolean): Promise<number> {
  let status = 0;
  await waitUntil(async () => expected(status = (await rawRequest(stack, '/fhir/Patient/p-0001', { headers: { cookie, accept: 'text/html' } })).status), 30_000, 250);
  return status;
}

t.test('fail-closed route survives a Redis outage', async (t) => {
  const port = await freePort();
  let redis = await startRedis(port);
  t.teardown(() => {
    redis.kill('SIGKILL');
  });
  // A policy without risk or time rules: the outcome depends only on the fail modes, whatever the hour.
  const policyFile = fileURLToPath(new URL('../../policy/examples/notes-step-up.yaml', import.meta.url));
  const stack = await startTestStack({ redisUrl: `redis://127.0.0.1:${port}`, policyFile });
  t.teardown(() => stack.close());
  t.equal(stack.wardgate.storeKind, 'redis');

  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  t.equal((await rawRequest(stack, '/fhir/Patient/p-0001', { headers: { cookie, accept: 'text/html' } })).status, 200, 'allowed while Redis is up');

  // A stopped process: connections stay open but nothing answers.
  redis.kill('SIGSTOP');
  const duringPause = await rawRequest(stack, '/fhir/Patient/p-0001', { headers: { cookie, accept: 'application/json' } });
  t.equal(duringPause.status, 503, 'fail closed while Redis does not answer');
  t.match(JSON.parse(duringPause.body), { error: 'WG_AUTH_STORE_UNAVAILABLE' });
  redis.kill('SIGCONT');
  t.equal(await untilStatus(stack, cookie, (status) => status === 200), 200, 'service resumes after the pause without a restart');

  // A dead process: connections are refused until a new server starts on the same port.
  redis.kill('SIGKILL');
  await new Promise((resolve) => redis.once('exit', resolve));
  const whileDown = await rawRequest(stack, '/fhir/Patient/p-0001', { headers: { cookie, accept: 'text/html' } });
  t.equal(whileDown.status, 503, 'fail closed while Redis is down');
  const health = await rawRequest(stack, '/.wardgate/health');
  t.equal(health.status, 200, 'the process keeps running');
  t.match(JSON.parse(health.body), { store: 'redis', store_connected: false }, 'and health says Redis is not connected');

  redis = await startRedis(port);
  // The new Redis kept nothing, so the old session is gone and the browser signs in again.
  t.equal(await untilStatus(stack, cookie, (status) => status !== 503), 302, 'the lost session leads to sign-in');
  const again = new Browser(stack.certificates.ca.cert);
  const page = await signIn(stack, again, 'nurse');
  t.equal(page.status, 200, 'sign-in and access work again without a restart');
  t.match(JSON.parse((await rawRequest(stack, '/.wardgate/health')).body), { store_connected: true }, 'health says Redis is connected again');
});
