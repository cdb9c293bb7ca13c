import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** Fixed GUID appended to the client key (RFC 6455 section 1.3). */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_FRAME_PAYLOAD_BYTES = 64 * 1024;
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/**
 * Accepts a WebSocket upgrade and echoes every text and binary message back. Only unfragmented
 * frames up to 64 KiB are supported, which is enough for upgrade tests through the proxy.
 */
export function acceptWebSocketEcho(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const key = req.headers['sec-websocket-key'];
  const isUpgrade = req.headers.upgrade?.toLowerCase() === 'websocket';
  if (!isUpgrade || typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16) {
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }

  // RFC 6455 section 4.2.2: Sec-WebSocket-Accept is base64(SHA-1(key + GUID)).
  const accept = createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);

  let buffered: Buffer = head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    buffered = consumeFrames(buffered, socket);
  };

  socket.on('error', () => socket.destroy());
  socket.on('data', onData);
  if (buffered.length > 0) buffered = consumeFrames(buffered, socket);
}

/** Encodes one unmasked server frame (RFC 6455 section 5.2). */
export function encodeFrame(opcode: number, payload: Buffer, mask?: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x80 | opcode, length]) : Buffer.from([0x80 | opcode, 126, length >> 8, length & 0xff]);
  if (mask === undefined) return Buffer.concat([header, payload]);

  header[1] = header[1]! | 0x80;
  const masked = Buffer.from(payload.map((byte, index) => byte ^ mask[index % 4]!));
  return Buffer.concat([header, mask, masked]);
}

/** Decodes one frame from `bytes`; `undefined` while incomplete. Client frames carry a mask, server frames do not. */
export function decodeFrame(bytes: Buffer): { opcode: number; payload: Buffer; byteLength: number } | undefined {
  if (bytes.length < 2) return undefined;

  const opcode = bytes[0]! & 0x0f;
  const masked = (bytes[1]! & 0x80) !== 0;
  let length = bytes[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (bytes.length < 4) return undefined;
    length = bytes.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return undefined;
    const longLength = bytes.readBigUInt64BE(2);
    length = longLength > BigInt(MAX_FRAME_PAYLOAD_BYTES) ? MAX_FRAME_PAYLOAD_BYTES + 1 : Number(longLength);
    offset = 10;
  }

  if (length > MAX_FRAME_PAYLOAD_BYTES) throw new RangeError(`WebSocket frame of ${length} bytes exceeds the demo limit of ${MAX_FRAME_PAYLOAD_BYTES}`);

  const maskBytes = masked ? 4 : 0;
  if (bytes.length < offset + maskBytes + length) return undefined;

  const mask = masked ? bytes.subarray(offset, offset + 4) : undefined;
  const data = bytes.subarray(offset + maskBytes, offset + maskBytes + length);
  const payload = mask === undefined ? Buffer.from(data) : Buffer.from(data.map((byte, index) => byte ^ mask[index % 4]!));

  return { opcode, payload, byteLength: offset + maskBytes + length };
}

function consumeFrames(bytes: Buffer, socket: Duplex): Buffer {
  let rest = bytes;

  for (;;) {
    let frame;
    try {
      frame = decodeFrame(rest);
    } catch {
      socket.end(encodeFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xf1])));
      return Buffer.alloc(0);
    }
    if (frame === undefined) return rest;

    rest = rest.subarray(frame.byteLength);
    if (frame.opcode === OPCODE_TEXT || frame.opcode === OPCODE_BINARY) socket.write(encodeFrame(frame.opcode, frame.payload));
    else if (frame.opcode === OPCODE_PING) socket.write(encodeFrame(OPCODE_PONG, frame.payload));
    else if (frame.opcode === OPCODE_CLOSE) {
      socket.end(encodeFrame(OPCODE_CLOSE, frame.payload.subarray(0, 2)));
      return Buffer.alloc(0);
    }
  }
}
