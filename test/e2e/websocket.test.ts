import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import t from 'tap';
import { decodeFrame, encodeFrame } from '../../demo/app/websocket-echo.ts';
import { Browser, signIn, startTestStack, type TestStack } from './support.ts';

let stack: TestStack;

t.before(async () => {
  stack = await startTestStack();
});
t.teardown(() => stack.close());

/** Opens a TLS connection to Wardgate, sends a WebSocket upgrade and collects what comes back. */
async function upgrade(cookie: string | undefined, protocol = 'websocket'): Promise<{ head: string; socket: tls.TLSSocket; rest: Buffer }> {
  const { port } = new URL(stack.url);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const key = randomBytes(16).toString('base64');
  socket.write(`GET /ws HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: ${protocol}\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n${cookie ? `Cookie: ${cookie}\r\n` : ''}\r\n`);

  let buffered = Buffer.alloc(0);
  while (!buffered.includes('\r\n\r\n')) {
    const chunk = await new Promise<Buffer>((resolve, reject) => socket.once('data', resolve).once('error', reject).once('end', () => resolve(Buffer.alloc(0))));
    if (chunk.length === 0) break;
    buffered = Buffer.concat([buffered, chunk]);
  }
  const end = buffered.indexOf('\r\n\r\n');
  return { head: buffered.subarray(0, end).toString(), socket, rest: buffered.subarray(end + 4) };
}

t.test('signed-in WebSocket echoes through Wardgate', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const { head, socket, rest } = await upgrade(`__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`);
  t.teardown(() => socket.destroy());

  t.match(head, /^HTTP\/1\.1 101 /);
  socket.write(encodeFrame(0x1, Buffer.from('vitals please'), randomBytes(4)));
  let received = rest;
  while (!decodeFrame(received)) {
    received = Buffer.concat([received, await new Promise<Buffer>((resolve) => socket.once('data', resolve))]);
  }
  t.equal(decodeFrame(received)?.payload.toString(), 'vitals please');
});

t.test('anonymous WebSocket upgrade is rejected', async (t) => {
  const { head, socket } = await upgrade(undefined);
  t.teardown(() => socket.destroy());

  t.match(head, /^HTTP\/1\.1 401 /);
});

t.test('an upgrade to another protocol gets 400', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  const { head, socket, rest } = await upgrade(`__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`, 'h2c');
  t.teardown(() => socket.destroy());

  t.match(head, /^HTTP\/1\.1 400 Bad Request\r\n/);
  t.match(JSON.parse(rest.toString()), { error: 'WG_HTTP_UPGRADE_NOT_SUPPORTED' });
});
