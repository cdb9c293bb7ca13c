import { Writable } from 'node:stream';

import { pino } from 'pino';
import t from 'tap';

import { Redis } from 'ioredis';

import { Browser, rawRequest, REDIS_URL, signIn, startTestStack, type TestStack } from './support.ts';

const logLines: Array<Record<string, unknown>> = [];
let stack: TestStack;

t.before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  stack = await startTestStack({ logger: pino({ level: 'warn' }, sink) });
});
t.teardown(() => stack.close());

t.test('Wardgate cookies are removed upstream, others kept', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, '__Host-wardgate_session')!;

  const response = await rawRequest(stack, '/debug/headers', {
    headers: {
      accept: 'application/json',
      cookie: `app_session=abc; __Host-wardgate_session=${session}; __Host-wardgate_login=x; theme=dark; __HOST-WARDGATE_handoff=y`,
    },
  });

  t.equal(response.status, 200);
  const received = (JSON.parse(response.body) as { headers: Record<string, string> }).headers;
  t.equal(received.cookie, 'app_session=abc; theme=dark', 'only the application cookies reach the upstream, in order');
});

t.test('upstream cannot set a Wardgate cookie', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, '__Host-wardgate_session')!;
  logLines.length = 0;

  const response = await rawRequest(stack, '/debug/set-cookie', { headers: { accept: 'application/json', cookie: `__Host-wardgate_session=${session}` } });

  t.equal(response.status, 200);
  t.same(response.headers['set-cookie'], ['app_session=demo; Path=/; HttpOnly'], 'only the application cookie is passed on');
  const warning = logLines.find((line) => line.msg === 'dropped upstream Set-Cookie headers for Wardgate cookie names');
  t.ok(warning, 'the dropped headers are logged');
  t.same(warning?.cookies, ['__Host-wardgate-session', '__Host-WARDGATE_x'], 'the log names the dropped cookies');
  t.notMatch(JSON.stringify(warning), /forged/, 'the log leaves out the cookie values');
});

t.test('session cookie stays small with a huge ID token', async (t) => {
  const hugeName = `Dr. ${'Verylongname'.repeat(1000)}`;
  stack.idp.updateAccount('physician', { name: hugeName });
  t.teardown(() => stack.idp.updateAccount('physician', { name: 'Dr. Ada Physician' }));
  const browser = new Browser(stack.certificates.ca.cert);

  const page = await signIn(stack, browser, 'physician');

  t.equal(page.status, 200, 'sign-in succeeds');
  const session = browser.cookie(stack.url, '__Host-wardgate_session');
  t.match(session, /^[A-Za-z0-9_-]{43}$/, 'the cookie holds only the opaque session id');
  const redis = new Redis(REDIS_URL);
  const record = JSON.parse((await redis.get(`${stack.keyPrefix}kv:session:${session}`)) ?? '{}') as { id_token?: string };
  redis.disconnect();
  t.ok((record.id_token?.length ?? 0) > 12_000, `the ID token is ${record.id_token?.length} characters long`);
  const cookieLine = `__Host-wardgate_session=${session}; Max-Age=${12 * 3600}; Path=/; Secure; HttpOnly; SameSite=Lax`;
  t.ok(Buffer.byteLength(cookieLine) < 4096, `the Set-Cookie value is ${Buffer.byteLength(cookieLine)} bytes, under 4 KB`);
  const headers = await browser.request(`${stack.url}/debug/headers`, { headers: { accept: 'application/json' } });
  const user = (JSON.parse(headers.body) as { user: { sub?: string } | null }).user;
  t.equal(user?.sub, 'demo-physician', 'the session works for the next request');
});
