import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import tls from 'node:tls';

import { generateKeyPair, SignJWT } from 'jose';
import t from 'tap';

import { Browser, rawRequest, signIn, startTestStack, type TestStack } from './support.ts';
import type { BrowserResponse } from '../identity/helpers.ts';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

let stack: TestStack;

t.before(async () => {
  // A policy without risk or time rules: whether a session still works must not depend on the hour.
  stack = await startTestStack({ policyFile: fileURLToPath(new URL('../../policy/examples/notes-step-up.yaml', import.meta.url)) });
});
t.teardown(() => stack.close());

/** Opens a WebSocket through Wardgate with the given session and resolves once the handshake succeeded. */
async function openWebSocket(session: string): Promise<{ socket: tls.TLSSocket; closed: Promise<void> }> {
  const { port } = new URL(stack.url);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`GET /ws HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nCookie: __Host-wardgate_session=${session}\r\n\r\n`);
  const head = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`WebSocket upgrade failed: ${head.slice(0, 200)}`);
  socket.on('error', () => {});
  return { socket, closed };
}

/** Submits the IdP's sign-out confirmation form, including its hidden xsrf field. */
async function confirmIdpLogout(browser: Browser, page: BrowserResponse): Promise<BrowserResponse> {
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.body)?.[1];
  if (xsrf === undefined) throw new Error(`No IdP sign-out form at ${page.url}: ${page.body.slice(0, 300)}`);
  return browser.submitForm(page, { xsrf, logout: 'yes' });
}

async function isSignedIn(session: string): Promise<boolean> {
  const response = await rawRequest(stack, '/debug/headers', { headers: { accept: 'application/json', cookie: `__Host-wardgate_session=${session}` } });
  return response.status === 200;
}

function backchannelPost(body: string, contentType = 'application/x-www-form-urlencoded') {
  return rawRequest(stack, '/.wardgate/backchannel-logout', { method: 'POST', headers: { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)) }, body });
}

function logoutClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: stack.idp.issuer,
    aud: stack.config.oidc.client_id,
    iat: Math.floor(Date.now() / 1000),
    jti: randomUUID(),
    events: { [BACKCHANNEL_EVENT]: {} },
    sub: 'demo-nurse',
    ...overrides,
  };
}

t.test('sign-out ends the IdP session and WebSockets', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, '__Host-wardgate_session')!;
  const ws = await openWebSocket(session);

  const form = await browser.request(`${stack.url}/.wardgate/logout`);
  const csrfToken = /name="csrf_token" value="([^"]+)"/.exec(form.body)?.[1];
  const crossSite = await browser.request(`${stack.url}/.wardgate/logout`, { method: 'POST', headers: { origin: 'https://evil.example' }, form: { csrf_token: csrfToken! } });
  t.equal(crossSite.status, 403, 'a cross-origin post is rejected even with the token');
  t.ok(await isSignedIn(session), 'the session survives the rejected post');

  const logout = await browser.request(`${stack.url}/.wardgate/logout`, { method: 'POST', headers: { origin: stack.url }, form: { csrf_token: csrfToken! } });
  t.equal(logout.status, 303);
  await ws.closed;
  t.pass('the session WebSocket was closed');
  t.notOk(await isSignedIn(session), 'the session is deleted in Redis');

  const endSession = new URL(String(logout.headers.location));
  t.equal(endSession.searchParams.get('post_logout_redirect_uri'), `${stack.url}/.wardgate/logged-out`);
  const confirm = await browser.follow(logout);
  const back = await browser.follow(await confirmIdpLogout(browser, confirm));
  t.equal(new URL(back.url).pathname, '/.wardgate/logged-out', 'the IdP returns the browser to Wardgate');
  t.match(back.body, /signed out of Wardgate and of the sign-in service/);

  const again = await browser.follow(await browser.request(`${stack.url}/`));
  t.match(again.body, /name="password"/, 'the next visit asks for the password again');
});

t.test('IdP back-channel logout ends the session', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, '__Host-wardgate_session')!;
  const other = new Browser(stack.certificates.ca.cert);
  await signIn(stack, other, 'nurse');
  const otherSession = other.cookie(stack.url, '__Host-wardgate_session')!;
  const ws = await openWebSocket(session);

  // Sign out at the IdP directly, as from another application: the IdP notifies Wardgate.
  const confirm = await browser.request(`${new URL(stack.idp.issuer).origin}/session/end`);
  await confirmIdpLogout(browser, confirm);
  await ws.closed;

  t.notOk(await isSignedIn(session), 'the session of that IdP session is deleted');
  t.ok(await isSignedIn(otherSession), 'a session from another IdP session (other sid) stays');
});

t.test('back-channel logout by subject ends all sessions', async (t) => {
  const first = new Browser(stack.certificates.ca.cert);
  await signIn(stack, first, 'clerk');
  const second = new Browser(stack.certificates.ca.cert);
  await signIn(stack, second, 'clerk');
  const token = await stack.idp.signToken(logoutClaims({ sub: 'demo-clerk' }), 'logout+jwt');

  const response = await backchannelPost(`logout_token=${token}`);

  t.equal(response.status, 200);
  t.equal(response.headers['cache-control'], 'no-store');
  t.notOk(await isSignedIn(first.cookie(stack.url, '__Host-wardgate_session')!));
  t.notOk(await isSignedIn(second.cookie(stack.url, '__Host-wardgate_session')!));
});

t.test('back-channel logout rejects bad tokens', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, '__Host-wardgate_session')!;
  const { privateKey } = await generateKeyPair('RS256');
  const foreign = await new SignJWT(logoutClaims()).setProtectedHeader({ alg: 'RS256', kid: 'foreign' }).sign(privateKey);
  const now = Math.floor(Date.now() / 1000);

  const cases: Array<[string, string, RegExp]> = [
    ['foreign signature', foreign, /failed verification/],
    ['nonce present', await stack.idp.signToken(logoutClaims({ nonce: 'n' })), /"nonce"/],
    ['events missing', await stack.idp.signToken(logoutClaims({ events: undefined })), /"events"/],
    ['wrong event', await stack.idp.signToken(logoutClaims({ events: { 'urn:other': {} } })), /"events" must contain/],
    ['wrong audience', await stack.idp.signToken(logoutClaims({ aud: 'someone-else' })), /claim "aud"/],
    ['wrong issuer', await stack.idp.signToken(logoutClaims({ iss: 'https://evil.example' })), /claim "iss"/],
    ['issued in the future', await stack.idp.signToken(logoutClaims({ iat: now + 3600 })), /"iat" claim timestamp check failed/],
    ['too old', await stack.idp.signToken(logoutClaims({ iat: now - 3600 })), /"iat" claim timestamp check failed/],
    ['no jti', await stack.idp.signToken(logoutClaims({ jti: undefined })), /"jti"/],
    ['neither sid nor sub', await stack.idp.signToken(logoutClaims({ sub: undefined })), /neither a "sid" nor a "sub"/],
  ];
  for (const [name, token, message] of cases) {
    const response = await backchannelPost(`logout_token=${token}`);
    t.equal(response.status, 400, `${name}: 400`);
    t.match(JSON.parse(response.body), { error: 'invalid_request', error_description: message }, `${name}: error names the problem`);
  }

  const wrongType = await backchannelPost(JSON.stringify({ logout_token: 'x' }), 'application/json');
  t.equal(wrongType.status, 400, 'a JSON body is rejected');
  const twice = await backchannelPost(`logout_token=a&logout_token=b`);
  t.equal(twice.status, 400, 'a repeated logout_token is rejected');
  t.ok(await isSignedIn(session), 'no bad token ended the session');

  const valid = await stack.idp.signToken(logoutClaims({ jti: 'replayed-jti-1' }), 'logout+jwt');
  t.equal((await backchannelPost(`logout_token=${valid}`)).status, 200);
  t.notOk(await isSignedIn(session), 'the valid token ended the session');
  const replay = await backchannelPost(`logout_token=${valid}`);
  t.equal(replay.status, 400, 'a replayed jti is rejected');
  t.match(JSON.parse(replay.body).error_description, /already used/);
});

t.test('sign-out under an unknown Host sends no return address to the IdP', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const session = browser.cookie(stack.url, '__Host-wardgate_session')!;
  const form = await browser.request(`${stack.url}/.wardgate/logout`);
  const csrfToken = /name="csrf_token" value="([^"]+)"/.exec(form.body)?.[1];
  const evil = `evil.example:${new URL(stack.url).port}`;

  const response = await rawRequest(stack, '/.wardgate/logout', {
    method: 'POST',
    servername: 'localhost',
    headers: { host: evil, origin: `https://${evil}`, cookie: `__Host-wardgate_session=${session}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: `csrf_token=${encodeURIComponent(csrfToken!)}`,
  });
  t.equal(response.status, 200, 'signed out without a redirect');
  t.equal(response.headers.location, undefined);
  t.notMatch(response.body, /evil\.example/);
  t.notOk(await isSignedIn(session), 'the session is deleted all the same');
});
