import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { PolicyPort } from '../../proxy/ports.ts';
import { waitUntil } from '../wait.ts';
import { Browser, rawRequest, shortenGrant, signIn, startTestStack, type TestStack } from './support.ts';

// When Wardgate destroys a client's WebSocket itself, the upstream connection behind it must close too.

/** RFC 6455 GUID that the server appends to Sec-WebSocket-Key to compute Sec-WebSocket-Accept. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The upstream's record of one WebSocket it accepted. */
interface UpstreamSocket {
  readonly path: string;
  closed: boolean;
}

/** A stand-in policy, because the policy YAML reader does not parse break_glass rules yet. */
const standIn: PolicyPort = {
  hash: 'stand-in',
  decide(context: DecisionContext): Decision {
    const { path, queryParams } = context.request;
    const risk = context.risk;
    if (path === '/ws' && queryParams.includes('restricted')) {
      return { action: 'break_glass', rule: 'socket-break-glass', reasons: ['restricted stream'], risk, breakGlass: { ttl: 600, reason_codes: ['emergency_care'] } };
    }
    return { action: 'allow', rule: 'allow-rest', reasons: [], risk };
  },
};

/** Every WebSocket the upstream accepted, in the order they opened. */
const upstreamSockets: UpstreamSocket[] = [];
const upstream = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('upstream');
});
upstream.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
  const record: UpstreamSocket = { path: req.url ?? '', closed: false };
  upstreamSockets.push(record);
  socket.on('error', () => {});
  socket.once('close', () => {
    record.closed = true;
  });
  // The socket must read to notice the peer's FIN, and it closes only after ending its own side,
  // as a WebSocket server does.
  socket.resume();
  socket.once('end', () => socket.end());
  const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}${WEBSOCKET_GUID}`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
});

let stack: TestStack;

t.before(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  stack = await startTestStack({ upstreamUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, wardgateOptions: { policy: () => standIn } });
});
t.teardown(async () => {
  await stack.close();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

/** Opens a WebSocket through Wardgate and returns the client socket and the upstream's record of it. */
async function openWebSocket(t: Test, browser: Browser, target: string): Promise<{ socket: tls.TLSSocket; upstreamSocket: UpstreamSocket }> {
  const { port } = new URL(stack.url);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const opened = upstreamSockets.length;
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nCookie: ${cookie}\r\n\r\n`);
  const head = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`WebSocket upgrade to ${target} failed: ${head.slice(0, 200)}`);
  const upstreamSocket = upstreamSockets[opened];
  if (upstreamSocket === undefined) throw new Error(`the upstream received no WebSocket for ${target}`);
  return { socket, upstreamSocket };
}

async function signedIn(username: string): Promise<Browser> {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, username);
  return browser;
}

t.test('sign-out closes the upstream WebSocket', async (t) => {
  const browser = await signedIn('nurse');
  const { socket, upstreamSocket } = await openWebSocket(t, browser, '/ws?case=sign-out');
  t.equal(upstreamSocket.path, '/ws?case=sign-out', 'the upstream holds the proxied WebSocket');
  t.equal(upstreamSocket.closed, false, 'the upstream socket is open before sign-out');
  const clientClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));

  const form = await browser.request(`${stack.url}/.wardgate/logout`);
  const csrfToken = /name="csrf_token" value="([^"]+)"/.exec(form.body)?.[1];
  t.ok(csrfToken, 'the sign-out form carries a CSRF token');
  const logout = await browser.request(`${stack.url}/.wardgate/logout`, { method: 'POST', headers: { origin: stack.url }, form: { csrf_token: csrfToken! } });
  t.equal(logout.status, 303, 'the sign-out is accepted');
  await clientClosed;

  t.ok(await waitUntil(() => upstreamSocket.closed, 10_000), 'the upstream socket closes within 10 s of wall time');
});

t.test('back-channel logout closes the upstream WebSocket', async (t) => {
  const browser = await signedIn('clerk');
  const { upstreamSocket } = await openWebSocket(t, browser, '/ws?case=back-channel');
  t.equal(upstreamSocket.closed, false, 'the upstream socket is open before the logout');

  const token = await stack.idp.signToken(
    {
      iss: stack.idp.issuer,
      aud: stack.config.oidc.client_id,
      iat: Math.floor(Date.now() / 1000),
      jti: randomUUID(),
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
      sub: stack.idp.accounts.find((account) => account.username === 'clerk')!.subject,
    },
    'logout+jwt',
  );
  const body = `logout_token=${token}`;
  const response = await rawRequest(stack, '/.wardgate/backchannel-logout', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) }, body });
  t.equal(response.status, 200, 'the logout token is accepted');

  t.ok(await waitUntil(() => upstreamSocket.closed, 10_000), 'the upstream socket closes within 10 s of wall time');
});

t.test('grant expiry closes the upstream WebSocket', async (t) => {
  const browser = await signedIn('nurse');
  const page = await browser.request(`${stack.url}/ws?restricted=1`, { headers: { accept: 'text/html' } });
  t.equal(page.status, 403, 'the restricted stream offers break-glass');
  const field = (name: string): string => new RegExp(`name="${name}" value="([^"]+)"`).exec(page.body)?.[1] ?? '';
  const form = { offer: field('offer'), csrf: field('csrf'), reason_code: 'emergency_care', justification: 'Patient arrived unconscious in the emergency department; I am the treating nurse.' };
  t.equal((await browser.request(`${stack.url}/.wardgate/break-glass`, { form })).status, 303, 'the grant is issued');

  await shortenGrant(t, stack, 'nurse');

  const { socket, upstreamSocket } = await openWebSocket(t, browser, '/ws?restricted=1');
  t.equal(upstreamSocket.closed, false, 'the upstream socket is open while the grant is active');
  const clientClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));

  stack.clock.now += 1_000;
  t.ok(await waitUntil(() => socket.destroyed, 10_000), 'Wardgate closes the client socket once the grant has expired');
  await clientClosed;
  t.ok(await waitUntil(() => upstreamSocket.closed, 10_000), 'the upstream socket closes within 10 s of wall time');
});
