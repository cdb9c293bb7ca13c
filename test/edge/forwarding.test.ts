import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import t, { type Test } from 'tap';

import { startDemoApp } from '../../demo/app/server.ts';
import { decodeFrame, encodeFrame } from '../../demo/app/websocket-echo.ts';
import { createForwarder } from '../../proxy/forward/forwarder.ts';
import type { ForwardError } from '../../proxy/forward/errors.ts';
import { setForwardedHeaders, stripIdentityHeaders } from '../../proxy/http/index.ts';
import type { RouteConfig } from '../../proxy/routing/router.ts';
import { waitUntil } from '../wait.ts';

const ASSERTION = `e30.${Buffer.from(JSON.stringify({ sub: 'dr-001', name: 'Dr Testa Notreal' })).toString('base64url')}.c2ln`;

function routeTo(upstream: string): RouteConfig {
  return { id: 'ehr', host: '*', path_prefix: '/', upstream, sensitivity: 'normal', fail_mode: { redis: 'closed', scorer: 'closed', idp: 'closed' } };
}

interface Front {
  readonly port: number;
  readonly errors: ForwardError[];
  /** Paths, as the client sent them, whose upstream response headers or upgrade arrived. */
  readonly answered: string[];
  /** Server-side client sockets of the upgrade requests, in the order they arrived. */
  readonly upgradeSockets: Duplex[];
}

/** Starts a plain HTTP front that does what the pipeline does before forwarding. */
async function startFront(t: Test, upstream: string): Promise<Front> {
  const errors: ForwardError[] = [];
  const answered: string[] = [];
  const upgradeSockets: Duplex[] = [];
  const forwarder = createForwarder({ onError: (error) => errors.push(error) });
  const route = routeTo(upstream);
  const prepare = (req: IncomingMessage): void => {
    stripIdentityHeaders(req.headers, 'x-wardgate-assertion');
    setForwardedHeaders(req.headers, { clientIp: req.socket.remoteAddress ?? '', proto: 'https', host: req.headers.host ?? '' });
  };

  const server: Server = createServer((req, res) => {
    prepare(req);
    const path = req.url ?? '';
    forwarder.web(req, res, route, { 'X-Wardgate-Assertion': ASSERTION }, () => answered.push(path));
  });
  server.on('upgrade', (req, socket, head) => {
    upgradeSockets.push(socket);
    prepare(req);
    const path = req.url ?? '';
    forwarder.ws(req, socket, head, route, { 'X-Wardgate-Assertion': ASSERTION }, () => answered.push(path));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    forwarder.close();
    server.closeAllConnections();
    server.close();
  });

  return { port: (server.address() as AddressInfo).port, errors, answered, upgradeSockets };
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

t.test('forwarder sends normalized request upstream', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  const front = await startFront(t, app.url);

  const reply = await get(front.port, '/debug//./x/../%68eaders?q=1', {
    'X-Wardgate-Assertion': 'forged',
    'x_forwarded_user': 'admin',
    'X-Forwarded-For': '10.9.9.9',
    forwarded: 'for=10.9.9.9',
    cookie: '__Host-wardgate-session=secret; app_session=demo; __HOST-WARDGATE_csrf=x',
  });
  const seen = JSON.parse(reply.body);

  t.equal(reply.status, 200);
  t.equal(seen.url, '/debug/headers?q=1');
  t.equal(seen.headers['x-wardgate-assertion'], ASSERTION);
  t.equal(seen.headers['x_forwarded_user'], undefined);
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${front.port}`);
  t.equal(seen.headers.forwarded, undefined);
  t.equal(seen.headers.cookie, 'app_session=demo');
  t.equal(seen.user.sub, 'dr-001');
  t.same(front.errors, []);
});

t.test('forwarder drops Wardgate cookies only', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  const front = await startFront(t, app.url);

  const onlyWardgate = JSON.parse((await get(front.port, '/debug/headers', { cookie: '__Host-wardgate-session=secret' })).body);
  t.equal(onlyWardgate.headers.cookie, undefined);
  // http-proxy skips its proxyReq event for a request with Expect, so the cookie must go before that.
  const expecting = JSON.parse((await get(front.port, '/debug/headers', { cookie: '__Host-wardgate-session=secret; app_session=demo', expect: '100-continue' })).body);
  t.equal(expecting.headers.cookie, 'app_session=demo', 'also with Expect: 100-continue');
  t.equal(expecting.headers.expect, undefined, 'Expect ends at Wardgate');

  const setCookie = await get(front.port, '/debug/set-cookie');
  t.equal(setCookie.status, 200);
  t.same(setCookie.headers['set-cookie'], ['app_session=demo; Path=/; HttpOnly']);
});

t.test('WebSocket upgrade drops Wardgate cookies', async (t) => {
  // A raw upstream that keeps the upgrade request's head and then closes.
  let head = '';
  const upstream = createNetServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      head = chunk.toString('latin1');
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  const front = await startFront(t, `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);

  const socket = connect(front.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.write(`GET /ws HTTP/1.1\r\nHost: ehr.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nCookie: __Host-wardgate_session=secret; app_session=demo\r\n\r\n`);
  await new Promise((resolve) => socket.once('data', resolve));

  t.match(head, /\r\ncookie: app_session=demo\r\n/i, 'the application cookie reaches the upstream');
  t.notMatch(head, /wardgate_session|secret/, 'the session cookie does not');
});

t.test('forwarder serves the FHIR API', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  const front = await startFront(t, app.url);

  const patient = await get(front.port, '/fhir/Patient/p-0001');
  t.equal(patient.status, 200);
  t.equal(JSON.parse(patient.body).id, 'p-0001');

  const badPath = await get(front.port, '/fhir/Patient%2Fp-0001');
  t.equal(badPath.status, 400);
  t.equal(JSON.parse(badPath.body).error, 'WG_HTTP_BAD_PATH');
});

t.test('forwarder proxies WebSocket upgrades', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  const front = await startFront(t, app.url);

  const key = randomBytes(16).toString('base64');
  const socket = connect(front.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.write(`GET /./ws HTTP/1.1\r\nHost: ehr.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);

  let received = Buffer.alloc(0);
  const waitFor = (done: (bytes: Buffer) => boolean): Promise<void> => new Promise((resolve) => {
    const check = (): void => {
      if (!done(received)) return;
      socket.removeListener('data', onData);
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      check();
    };
    socket.on('data', onData);
    check();
  });

  await waitFor((bytes) => bytes.includes('\r\n\r\n'));
  const headerEnd = received.indexOf('\r\n\r\n') + 4;
  const head = received.subarray(0, headerEnd).toString('latin1');
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  t.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  t.match(head.toLowerCase(), `sec-websocket-accept: ${accept.toLowerCase()}`);
  received = received.subarray(headerEnd);

  socket.write(encodeFrame(0x1, Buffer.from('vitals p-0001'), randomBytes(4)));
  await waitFor((bytes) => decodeFrame(bytes) !== undefined);
  const frame = decodeFrame(received)!;
  t.equal(frame.opcode, 0x1);
  t.equal(frame.payload.toString('utf8'), 'vitals p-0001');
  t.same(front.errors, []);
  t.same(front.answered, ['/./ws'], 'the upstream accepted the upgrade once');
});

/**
 * Starts a raw upstream that records each connection and responds to a WebSocket upgrade with 101
 * once `accept` is called. A connection closes only after both sides have ended it.
 */
async function startUpgradeUpstream(t: Test): Promise<{ url: string; connections: Array<{ closed: boolean; accept: () => void }> }> {
  const connections: Array<{ closed: boolean; accept: () => void }> = [];
  const upstream = createNetServer({ allowHalfOpen: true }, (socket: Socket) => {
    const connection = { closed: false, accept: () => {} };
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      connection.closed = true;
    });
    socket.once('end', () => socket.end());
    socket.once('data', (chunk: Buffer) => {
      const key = /\r\nsec-websocket-key: *([^\r]+)\r\n/i.exec(chunk.toString('latin1'))?.[1] ?? '';
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      connection.accept = () => void socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
      connections.push(connection);
      socket.resume();
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  return { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, connections };
}

function sendUpgrade(port: number): Socket {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET /ws HTTP/1.1\r\nHost: ehr.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`);
  return socket;
}

t.test('destroyed client WebSocket closes upstream', async (t) => {
  const upstream = await startUpgradeUpstream(t);
  const front = await startFront(t, upstream.url);
  const client = sendUpgrade(front.port);
  t.teardown(() => client.destroy());
  t.ok(await waitUntil(() => upstream.connections.length === 1, 10_000), 'the upgrade reaches the upstream');
  upstream.connections[0]!.accept();
  const head = await new Promise<Buffer>((resolve) => client.once('data', resolve));
  t.match(head.toString('latin1'), /^HTTP\/1\.1 101 /, 'the client gets 101');

  // Wardgate's own close paths (sign-out, an expired grant) destroy the server-side socket.
  front.upgradeSockets[0]!.destroy();

  t.ok(await waitUntil(() => upstream.connections[0]!.closed, 10_000), 'the upstream connection closes within 10 s of wall time');
});

t.test('client closed before 101 closes upstream', async (t) => {
  const upstream = await startUpgradeUpstream(t);
  const front = await startFront(t, upstream.url);
  const client = sendUpgrade(front.port);
  t.teardown(() => client.destroy());
  t.ok(await waitUntil(() => upstream.connections.length === 1, 10_000), 'the upgrade reaches the upstream');

  front.upgradeSockets[0]!.destroy();
  upstream.connections[0]!.accept();

  t.ok(await waitUntil(() => upstream.connections[0]!.closed, 10_000), 'the upstream connection closes within 10 s of wall time');
});

t.test('dead upstream answers 502', async (t) => {
  const front = await startFront(t, `http://127.0.0.1:${await unusedPort()}`);

  const api = await get(front.port, '/fhir/Patient', { accept: 'application/json' });
  t.equal(api.status, 502);
  t.same(JSON.parse(api.body), { error: 'WG_UPSTREAM_UNAVAILABLE', message: 'The upstream of route ehr is unavailable. Try again later.', route: 'ehr' });

  const browser = await get(front.port, '/', { accept: 'text/html,application/xhtml+xml' });
  t.equal(browser.status, 502);
  t.equal(browser.headers['content-type'], 'text/html; charset=utf-8');
  t.match(browser.body, '<h1>Application unavailable</h1>');

  const upperCase = await get(front.port, '/', { accept: 'TEXT/HTML' });
  t.equal(upperCase.headers['content-type'], 'text/html; charset=utf-8', 'Accept is read in any letter case');
  const bearer = await get(front.port, '/', { accept: 'text/html', authorization: 'Bearer abc' });
  t.equal(bearer.headers['content-type'], 'application/json', 'a request with Authorization is an API client');

  t.equal(front.errors.length, 4);
  t.same(front.answered, [], 'no upstream responded');
  t.equal(front.errors[0]!.code, 'WG_UPSTREAM_UNAVAILABLE');
  t.equal(front.errors[0]!.routeId, 'ehr');
  t.equal((front.errors[0]!.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');

  const socket = connect(front.port, '127.0.0.1');
  const reply = await new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.write('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  });
  t.match(reply, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  t.equal(front.errors.length, 5);
  t.same(front.answered, [], 'nor did it answer the upgrade');
});

t.test('resetting upstream answers 502', async (t) => {
  const resetting = createServer((req) => req.socket.destroy());
  await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
  t.teardown(() => resetting.close());
  const front = await startFront(t, `http://127.0.0.1:${(resetting.address() as AddressInfo).port}`);

  const reply = await get(front.port, '/fhir/Patient');
  t.equal(reply.status, 502);
  t.equal(JSON.parse(reply.body).error, 'WG_UPSTREAM_UNAVAILABLE');
  t.equal(front.errors.length, 1);
  t.same(front.answered, [], 'a reset before the response headers is no answer');
});

/** Raw responses that a plain HTTP response cannot pass on, and the status each error names. */
const invalidStatuses: [string, string, number][] = [
  ['status below 100', 'HTTP/1.1 099 Odd\r\ncontent-length: 5\r\n\r\nhello', 99],
  ['101 without Upgrade', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', 101],
  ['101 with Upgrade', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n', 101],
];

for (const [name, raw, status] of invalidStatuses) {
  t.test(`upstream ${name}: 502, front keeps serving`, async (t) => {
    const odd = createNetServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.on('data', () => socket.write(raw));
    });
    await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
    t.teardown(() => odd.close());
    const front = await startFront(t, `http://127.0.0.1:${(odd.address() as AddressInfo).port}`);

    const first = await get(front.port, '/fhir/Patient/p-0001', { accept: 'application/json' });
    const second = await get(front.port, '/fhir/Patient/p-0002', { accept: 'application/json' });

    t.equal(first.status, 502);
    t.same(JSON.parse(first.body), { error: 'WG_UPSTREAM_UNAVAILABLE', message: 'The upstream of route ehr is unavailable. Try again later.', route: 'ehr' });
    t.equal(second.status, 502, 'the front still serves the next request');
    t.equal(front.errors.length, 2, 'one error per request');
    t.match(front.errors[0]!.message, new RegExp(`is unavailable: its response had status ${status}, expected 200 to 999\\.$`));
    t.same(front.answered, [], 'such a status is no answer');
  });
}

t.test('upstream reason phrase with a control character', async (t) => {
  const odd = createNetServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.on('data', () => socket.write('HTTP/1.1 200 O\x01K\r\ncontent-length: 5\r\n\r\nhello'));
  });
  await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
  t.teardown(() => odd.close());
  const front = await startFront(t, `http://127.0.0.1:${(odd.address() as AddressInfo).port}`);

  const first = await get(front.port, '/fhir/Patient/p-0001');
  const second = await get(front.port, '/fhir/Patient/p-0002');

  t.equal(first.status, 200, 'the response passes with the standard reason phrase');
  t.equal(first.body, 'hello');
  t.equal(second.status, 200, 'the front still serves the next request');
  t.same(front.errors, []);
});

t.test('forwarder reports each upstream answer once, whatever its status', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  const front = await startFront(t, app.url);

  const found = await get(front.port, '/fhir/Patient/p-0001', { accept: 'application/fhir+json' });
  const missing = await get(front.port, '/fhir/Patient/no-such-patient', { accept: 'application/fhir+json' });

  t.equal(found.status, 200);
  t.equal(missing.status, 404);
  t.same(front.answered, ['/fhir/Patient/p-0001', '/fhir/Patient/no-such-patient'], 'both responses came from the upstream');
});

t.test('client abort mid-response keeps serving', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  const front = await startFront(t, app.url);

  await new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port: front.port, path: '/debug/stream', agent: false }, (res) => {
      res.once('data', () => {
        req.destroy();
        res.on('close', () => resolve());
      });
    });
    req.on('error', () => resolve());
    req.end();
  });

  const after = await get(front.port, '/healthz');
  t.equal(after.status, 200);
  t.same(JSON.parse(after.body), { status: 'ok' });
});
