import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';
import { pino } from 'pino';
import t from 'tap';

import { defaultAuditConfig } from '../../proxy/audit/config.ts';
import { runReviewCommand } from '../../proxy/review/cli.ts';
import { ReviewQueue } from '../../proxy/review/queue.ts';
import { startWardgate, type RunningWardgate } from '../../proxy/runtime.ts';
import { sampleEntry } from '../review/helpers.ts';
import { Browser, rawRequest, REDIS_URL, signIn, startTestStack, type TestStack } from './support.ts';

// Two Wardgate instances behind one load balancer: the test stack (instance A, which also
// runs the IdP and the demo app) and instance B, started from the same configuration with
// the same Redis key prefix.
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const SESSION_COOKIE = '__Host-wardgate_session';

let stack: TestStack;
let instanceB: RunningWardgate;
let urlB: string;

t.before(async () => {
  // A policy without risk or time rules: whether a session still works must not depend on the hour.
  stack = await startTestStack({ policyFile: fileURLToPath(new URL('../../policy/examples/notes-step-up.yaml', import.meta.url)) });
  const auditDir = mkdtempSync(join(tmpdir(), 'wgtest-instance-b-'));
  t.teardown(() => rmSync(auditDir, { recursive: true, force: true }));
  instanceB = await startWardgate(
    { ...stack.config, listen: { ...stack.config.listen, port: 0 }, audit: defaultAuditConfig(auditDir) },
    { now: () => stack.clock.now, logger: pino({ level: process.env.WARDGATE_TEST_LOG ?? 'silent' }) },
  );
  urlB = `https://localhost:${instanceB.address.port}`;
});
t.teardown(async () => {
  await instanceB?.close();
  await stack?.close();
});

/** Opens a WebSocket through the instance at `url` with the given session; resolves once the handshake succeeded. */
async function openWebSocket(url: string, session: string): Promise<{ socket: tls.TLSSocket; closed: Promise<void> }> {
  const { port } = new URL(url);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`GET /ws HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nCookie: ${SESSION_COOKIE}=${session}\r\n\r\n`);
  const head = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`WebSocket upgrade at ${url} failed: ${head.slice(0, 200)}`);
  socket.on('error', () => {});
  return { socket, closed };
}

/**
 * Resolves when `closed` does, and rejects naming `what` after 10 seconds. The events travel
 * through Redis, so the wait is generous, and it is well below the 30-second re-check that
 * would close the socket without an event.
 */
async function closedWithin(closed: Promise<void>, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} was still open 10 seconds after the session ended`)), 10_000);
  });
  try {
    await Promise.race([closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function isSignedIn(url: string, session: string): Promise<boolean> {
  const response = await rawRequest({ ...stack, url }, '/debug/headers', { headers: { accept: 'application/json', cookie: `${SESSION_COOKIE}=${session}` } });
  return response.status === 200;
}

function backchannelPost(url: string, token: string) {
  const body = `logout_token=${token}`;
  return rawRequest({ ...stack, url }, '/.wardgate/backchannel-logout', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) }, body });
}

function logoutToken(subject: string): Promise<string> {
  const claims = { iss: stack.idp.issuer, aud: stack.config.oidc.client_id, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), events: { [BACKCHANNEL_EVENT]: {} }, sub: subject };
  return stack.idp.signToken(claims, 'logout+jwt');
}

t.test('session works on both instances', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, SESSION_COOKIE)!;

  t.ok(await isSignedIn(stack.url, session), 'instance A knows the session');
  t.ok(await isSignedIn(urlB, session), 'instance B knows the session from the shared Redis');
});

t.test('sign-out closes WebSockets on the other instance', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, SESSION_COOKIE)!;
  const onA = await openWebSocket(stack.url, session);
  const onB = await openWebSocket(urlB, session);
  t.teardown(() => {
    onA.socket.destroy();
    onB.socket.destroy();
  });

  const form = await browser.request(`${stack.url}/.wardgate/logout`);
  const csrfToken = /name="csrf_token" value="([^"]+)"/.exec(form.body)?.[1];
  const logout = await browser.request(`${stack.url}/.wardgate/logout`, { method: 'POST', headers: { origin: stack.url }, form: { csrf_token: csrfToken! } });
  t.equal(logout.status, 303);

  await closedWithin(onA.closed, 'the WebSocket on instance A, which handled the sign-out,');
  await closedWithin(onB.closed, 'the WebSocket on instance B');
  t.pass('both WebSockets of the session are closed');
  t.notOk(await isSignedIn(urlB, session), 'instance B no longer accepts the session');
});

t.test('back-channel logout closes WebSockets on every instance', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'clerk');
  const session = browser.cookie(stack.url, SESSION_COOKIE)!;
  const onA = await openWebSocket(stack.url, session);
  const onB = await openWebSocket(urlB, session);
  t.teardown(() => {
    onA.socket.destroy();
    onB.socket.destroy();
  });

  const response = await backchannelPost(urlB, await logoutToken('demo-clerk'));
  t.equal(response.status, 200);

  await closedWithin(onB.closed, 'the WebSocket on instance B, which received the logout token,');
  await closedWithin(onA.closed, 'the WebSocket on instance A');
  t.pass('both WebSockets of the session are closed');
});

t.test('review revocation closes WebSockets on every instance', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const session = browser.cookie(stack.url, SESSION_COOKIE)!;
  const bystander = new Browser(stack.certificates.ca.cert);
  await signIn(stack, bystander, 'nurse');
  const onA = await openWebSocket(stack.url, session);
  const onB = await openWebSocket(urlB, session);
  const bystanderOnB = await openWebSocket(urlB, bystander.cookie(stack.url, SESSION_COOKIE)!);
  t.teardown(() => {
    onA.socket.destroy();
    onB.socket.destroy();
    bystanderOnB.socket.destroy();
  });
  let bystanderClosed = false;
  void bystanderOnB.closed.then(() => {
    bystanderClosed = true;
  });

  const redis = new Redis(REDIS_URL);
  t.teardown(() => redis.disconnect());
  const id = await new ReviewQueue(redis, { prefix: stack.keyPrefix, maxLength: 1000 }).add(sampleEntry({ user: 'demo-physician' }));
  const out = new PassThrough();
  let output = '';
  out.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // The CLI is a process of its own: it reaches the instances only through Redis.
  const code = await runReviewCommand(['label', id, 'misuse', '--note', 'opened a colleague chart', '--analyst', 'ana', '--revoke', '--redis', REDIS_URL, '--prefix', stack.keyPrefix], out, out);
  t.equal(code, 0, output);

  await closedWithin(onA.closed, 'the WebSocket on instance A');
  await closedWithin(onB.closed, 'the WebSocket on instance B');
  t.pass('both WebSockets of the revoked user are closed');
  t.notOk(bystanderClosed, 'the WebSocket of another user stays open');
});

t.test('one logout token is accepted once across instances', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const token = await logoutToken('demo-nurse');

  const responses = await Promise.all(Array.from({ length: 10 }, (_, index) => backchannelPost(index % 2 === 0 ? stack.url : urlB, token)));

  const statuses = responses.map((response) => response.status).sort();
  t.same(statuses, [200, 400, 400, 400, 400, 400, 400, 400, 400, 400], 'one copy is accepted and the others are rejected');
  for (const response of responses.filter((candidate) => candidate.status === 400)) {
    t.match(JSON.parse(response.body).error_description, /claim "jti" was already used/);
  }
});
