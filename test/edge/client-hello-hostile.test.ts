import { randomBytes } from 'node:crypto';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

import t from 'tap';

import { MAX_CLIENT_HELLO_BYTES, readClientHello } from '../../proxy/tls/client-hello.ts';
import type { TlsError } from '../../proxy/tls/errors.ts';
import { createTlsListener, getTlsFacts } from '../../proxy/tls/listener.ts';
import { captureClientHello, createTestCertificates, httpsGet } from './helpers.ts';

/** Wraps a handshake message into TLS records of at most `recordSize` payload bytes. */
function toRecords(handshake: Buffer, recordSize: number): Buffer {
  const records: Buffer[] = [];
  for (let offset = 0; offset < handshake.length; offset += recordSize) {
    const fragment = handshake.subarray(offset, offset + recordSize);
    const header = Buffer.from([0x16, 0x03, 0x01, fragment.length >> 8, fragment.length & 0xff]);
    records.push(header, fragment);
  }
  return Buffer.concat(records);
}

function handshakeOf(hello: Buffer): Buffer {
  return hello.subarray(5, 5 + hello.readUInt16BE(3));
}

/** Builds a ClientHello handshake message with the given extensions block. */
function buildHello(extensions: Buffer): Buffer {
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32),
    Buffer.from([0x00]),
    Buffer.from([0x00, 0x02, 0x13, 0x01]),
    Buffer.from([0x01, 0x00]),
    Buffer.from([extensions.length >> 8, extensions.length & 0xff]),
    extensions,
  ]);
  return Buffer.concat([Buffer.from([0x01, 0x00, body.length >> 8, body.length & 0xff]), body]);
}

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type >> 8, type & 0xff, data.length >> 8, data.length & 0xff]), data]);
}

const supportedGroupsX25519 = extension(0x000a, Buffer.from([0x00, 0x02, 0x00, 0x1d]));
const keyShareX25519 = (): Buffer => Buffer.from([0x00, 0x1d, 0x00, 0x20, ...Buffer.alloc(32, 7)]);

t.test('readClientHello parses a Node ClientHello', async (t) => {
  const hello = await captureClientHello({ ecdhCurve: 'X25519MLKEM768:X25519', servername: 'ehr.localhost' });
  const result = readClientHello(hello);

  t.equal(result.complete, true);
  if (!result.complete) return;
  t.equal(result.byteLength, hello.length);
  t.same(result.hello.supportedGroups, [0x11ec, 0x001d]);
  t.same(result.hello.keyShareGroups, [0x11ec]);
  t.ok(result.hello.supportedVersions.includes(0x0304));
  t.equal(result.hello.serverName, 'ehr.localhost');
});

t.test('readClientHello handles split records', async (t) => {
  const handshake = handshakeOf(await captureClientHello());
  const records = toRecords(handshake, 100);
  const result = readClientHello(records);

  t.equal(result.complete, true);
  if (result.complete) t.same(result.hello.keyShareGroups, [0x11ec, 0x001d]);
});

t.test('readClientHello waits on every truncation', async (t) => {
  const hello = toRecords(handshakeOf(await captureClientHello()), 300);

  for (let length = 0; length < hello.length; length++) {
    const result = readClientHello(hello.subarray(0, length));
    if (result.complete) t.fail(`complete after only ${length} bytes`);
  }
  t.equal(readClientHello(hello).complete, true);
});

t.test('readClientHello rejects hostile input', async (t) => {
  const duplicateExtension = buildHello(Buffer.concat([supportedGroupsX25519, supportedGroupsX25519]));
  const duplicateKeyShare = buildHello(Buffer.concat([
    supportedGroupsX25519,
    extension(0x0033, Buffer.concat([Buffer.from([0x00, 0x48]), keyShareX25519(), keyShareX25519()])),
  ]));
  const oddGroups = buildHello(extension(0x000a, Buffer.from([0x00, 0x03, 0x00, 0x1d, 0x00])));
  const groupsOverrun = buildHello(extension(0x000a, Buffer.from([0x00, 0x08, 0x00, 0x1d])));
  const emptyKeyExchange = buildHello(extension(0x0033, Buffer.from([0x00, 0x04, 0x00, 0x1d, 0x00, 0x00])));
  const trailingBytes = Buffer.concat([buildHello(supportedGroupsX25519), Buffer.from([0x00])]);
  trailingBytes.writeUInt16BE(trailingBytes.length - 4, 2);
  const serverHello = Buffer.from(buildHello(supportedGroupsX25519));
  serverHello[0] = 0x02;
  const oversized = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]);

  const cases: Array<[string, Buffer, string]> = [
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'WG_TLS_NOT_TLS'],
    ['SSLv2-style hello', Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02]), 'WG_TLS_NOT_TLS'],
    ['record version 0x0200', Buffer.from([0x16, 0x02, 0x00, 0x00, 0x10]), 'WG_TLS_NOT_TLS'],
    ['empty record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['record over 2^14', Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['announced hello over maximum', oversized, 'WG_TLS_CLIENT_HELLO_TOO_LARGE'],
    ['ServerHello type', toRecords(serverHello, 16384), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['duplicate extension', toRecords(duplicateExtension, 16384), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['duplicate key share group', toRecords(duplicateKeyShare, 16384), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['odd supported_groups length', toRecords(oddGroups, 16384), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['supported_groups overrun', toRecords(groupsOverrun, 16384), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['empty key_exchange', toRecords(emptyKeyExchange, 16384), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
    ['bytes after extensions', toRecords(trailingBytes, 16384), 'WG_TLS_MALFORMED_CLIENT_HELLO'],
  ];

  for (const [name, bytes, code] of cases) {
    t.throws(() => readClientHello(bytes), { code }, name);
  }

  t.equal(MAX_CLIENT_HELLO_BYTES, 32768);
});

t.test('readClientHello survives random bytes', async (t) => {
  let thrown = 0;
  for (let round = 0; round < 500; round++) {
    const bytes = randomBytes(3 + (round % 300));
    if (round % 2 === 0) bytes.set([0x16, 0x03, 0x01], 0);
    try {
      readClientHello(bytes);
    } catch (error) {
      if (!(error as TlsError).code?.startsWith('WG_TLS_')) throw error;
      thrown++;
    }
  }
  t.ok(thrown > 0);
});

t.test('listener closes hostile connections and keeps serving', async (t) => {
  const certificates = await createTestCertificates(t);
  const listener = createTlsListener(
    { key: certificates.server.key, cert: certificates.server.cert, helloTimeoutMs: 200 },
    (req, res) => res.end(getTlsFacts(req.socket as TLSSocket).group),
  );
  const port = (await listener.listen(0, '127.0.0.1')).port;
  t.teardown(() => listener.close());

  const closedBy = (payload: Buffer | undefined, endAfterWrite: boolean): Promise<string> => new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1', () => {
      if (payload !== undefined) socket.write(payload);
      if (endAfterWrite) socket.end();
    });
    const received: Buffer[] = [];
    socket.on('data', (chunk) => received.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(received).toString('latin1')));
  });

  const plain = await closedBy(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'), false);
  t.match(plain, /^HTTP\/1\.1 400 Bad Request\r\n/, 'plain HTTP gets a plain-text answer');
  t.match(plain, /speaks HTTPS only/);
  t.equal(await closedBy(randomBytes(2048), false), '');
  t.equal(await closedBy(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), true), '');
  t.equal(await closedBy(Buffer.from([0x16, 0x03, 0x01, 0x7f, 0xff]), false), '');
  t.equal(await closedBy(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04]), Buffer.from([0x01, 0xff, 0xff, 0xff])]), false), '');
  t.equal(await closedBy(undefined, false), '');

  const healthy = await httpsGet(port, '/', { ca: certificates.ca.cert });
  t.equal(healthy.status, 200);
  t.equal(healthy.body, 'X25519MLKEM768');
});

t.test('listener reports each hostile connection code', async (t) => {
  const certificates = await createTestCertificates(t);
  const codes: string[] = [];
  let notify: (() => void) | undefined;
  const listener = createTlsListener(
    {
      key: certificates.server.key,
      cert: certificates.server.cert,
      helloTimeoutMs: 100,
      onConnectionError: (error) => {
        codes.push(error.code);
        notify?.();
      },
    },
    (_req, res) => res.end('ok'),
  );
  const port = (await listener.listen(0, '127.0.0.1')).port;
  t.teardown(() => listener.close());

  const expectCode = async (send: (socket: Socket) => void): Promise<string | undefined> => {
    const reported = new Promise<void>((resolve) => { notify = resolve; });
    const socket = connect(port, '127.0.0.1', () => send(socket));
    socket.on('error', () => {});
    await reported;
    socket.destroy();
    return codes.at(-1);
  };

  t.equal(await expectCode((socket) => socket.write('GET / HTTP/1.1\r\n\r\n')), 'WG_TLS_NOT_TLS');
  t.equal(await expectCode((socket) => socket.end(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00]))), 'WG_TLS_CLIENT_HELLO_TRUNCATED');
  t.equal(await expectCode((socket) => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]))), 'WG_TLS_CLIENT_HELLO_TOO_LARGE');
  t.equal(await expectCode((socket) => socket.write(Buffer.from([0x16, 0x03]))), 'WG_TLS_CLIENT_HELLO_TIMEOUT');
  t.equal(await expectCode((socket) => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]))), 'WG_TLS_MALFORMED_CLIENT_HELLO');

  // A hello announcing 32764 body bytes, sent one byte per record: six bytes on the wire per hello byte.
  const header = Buffer.from([0x01, 0x00, 0x7f, 0xfc]);
  const oneBytePerRecord = Buffer.concat([...header, ...Buffer.alloc(12_000, 0x03)].map((byte) => Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, byte])));
  t.equal(await expectCode((socket) => socket.write(oneBytePerRecord)), 'WG_TLS_CLIENT_HELLO_TOO_LARGE');
});

t.test('listener accepts a hello split over packets', async (t) => {
  const certificates = await createTestCertificates(t);
  const listener = createTlsListener(
    { key: certificates.server.key, cert: certificates.server.cert },
    (req, res) => res.end(getTlsFacts(req.socket as TLSSocket).group),
  );
  const port = (await listener.listen(0, '127.0.0.1')).port;
  t.teardown(() => listener.close());

  // A relay that forwards the client's first bytes in 7-byte writes, each flushed separately.
  const { createServer } = await import('node:net');
  const relay = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    outbound.setNoDelay(true);
    let first = true;
    inbound.on('data', async (chunk: Buffer) => {
      if (!first) {
        outbound.write(chunk);
        return;
      }
      first = false;
      inbound.pause();
      for (let offset = 0; offset < chunk.length; offset += 7) {
        await new Promise<void>((resolve) => outbound.write(chunk.subarray(offset, offset + 7), () => setImmediate(resolve)));
      }
      inbound.resume();
    });
    outbound.pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
    inbound.on('close', () => outbound.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => relay.close(() => resolve())));

  const result = await httpsGet((relay.address() as AddressInfo).port, '/', { ca: certificates.ca.cert, ecdhCurve: 'X25519' });
  t.equal(result.status, 200);
  t.equal(result.body, 'X25519');
});
