import { TlsError } from './errors.ts';

/** The parts of a TLS ClientHello that decide the key exchange group (RFC 8446 section 4.1.2). */
export interface ClientHello {
  readonly legacyVersion: number;
  /** `supported_versions` (RFC 8446 section 4.2.1); empty when the extension is absent. */
  readonly supportedVersions: readonly number[];
  /** `supported_groups` (RFC 8446 section 4.2.7) in client preference order; `undefined` when absent. */
  readonly supportedGroups: readonly number[] | undefined;
  /** Groups of the `key_share` entries (RFC 8446 section 4.2.8) in the order sent. */
  readonly keyShareGroups: readonly number[];
  /** `server_name` host name (RFC 6066 section 3), when present. */
  readonly serverName: string | undefined;
}

/** Result of `readClientHello`: either more bytes are needed, or the hello and the bytes it spans. */
export type ClientHelloReadResult =
  | { readonly complete: false }
  | { readonly complete: true; readonly hello: ClientHello; readonly byteLength: number };

/**
 * Maximum size of the ClientHello handshake message. A hello with several post-quantum key
 * shares stays below 8 KiB; this bound only stops a client from making the listener buffer
 * without limit.
 */
export const MAX_CLIENT_HELLO_BYTES = 32 * 1024;

const RECORD_HEADER_BYTES = 5;
/** TLSPlaintext.length must not exceed 2^14 (RFC 8446 section 5.1). */
const MAX_RECORD_PAYLOAD_BYTES = 16384;
const CONTENT_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_TYPE_CLIENT_HELLO = 0x01;
const HANDSHAKE_HEADER_BYTES = 4;

const EXTENSION_SERVER_NAME = 0x0000;
const EXTENSION_SUPPORTED_GROUPS = 0x000a;
const EXTENSION_SUPPORTED_VERSIONS = 0x002b;
const EXTENSION_KEY_SHARE = 0x0033;

/**
 * Reads the ClientHello from the first bytes a client sent on a connection. The hello may be
 * split over several handshake records, and the records over several reads.
 *
 * @returns `{ complete: false }` while more bytes are needed; otherwise the parsed hello and
 *   the number of record bytes it spans.
 * @throws {TlsError} `WG_TLS_NOT_TLS`, `WG_TLS_MALFORMED_CLIENT_HELLO` or `WG_TLS_CLIENT_HELLO_TOO_LARGE`.
 */
export function readClientHello(bytes: Uint8Array): ClientHelloReadResult {
  const fragments: Uint8Array[] = [];
  let handshakeBytes = 0;
  let offset = 0;
  let expectedHandshakeBytes: number | undefined;

  while (expectedHandshakeBytes === undefined || handshakeBytes < expectedHandshakeBytes) {
    if (offset === bytes.length) return { complete: false };

    if (bytes[offset] !== CONTENT_TYPE_HANDSHAKE) {
      throw new TlsError('WG_TLS_NOT_TLS', `Connection data is not TLS: expected a handshake record (content type 0x16), received byte 0x${bytes[offset]!.toString(16).padStart(2, '0')} at offset ${offset}. The client must speak TLS on this port.`);
    }

    if (bytes.length - offset < RECORD_HEADER_BYTES) return { complete: false };

    const recordVersion = readUint16(bytes, offset + 1);
    const recordLength = readUint16(bytes, offset + 3);
    if (recordVersion >> 8 !== 0x03) {
      throw new TlsError('WG_TLS_NOT_TLS', `Connection data is not TLS: expected a record version 0x03xx, received 0x${recordVersion.toString(16).padStart(4, '0')}.`);
    }

    if (recordLength === 0 || recordLength > MAX_RECORD_PAYLOAD_BYTES) {
      throw malformed(`record length ${recordLength} is outside 1..${MAX_RECORD_PAYLOAD_BYTES}`);
    }

    if (bytes.length - offset - RECORD_HEADER_BYTES < recordLength) return { complete: false };

    const fragment = bytes.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + recordLength);
    fragments.push(fragment);
    handshakeBytes += fragment.length;
    offset += RECORD_HEADER_BYTES + recordLength;

    if (expectedHandshakeBytes === undefined && handshakeBytes >= HANDSHAKE_HEADER_BYTES) {
      expectedHandshakeBytes = readHandshakeHeader(concat(fragments, handshakeBytes));
    }
  }

  const handshake = concat(fragments, handshakeBytes);
  if (handshakeBytes > expectedHandshakeBytes) {
    throw malformed(`the records carry ${handshakeBytes - expectedHandshakeBytes} bytes after the ClientHello message`);
  }

  const hello = parseClientHelloBody(handshake.subarray(HANDSHAKE_HEADER_BYTES));

  return { complete: true, hello, byteLength: offset };
}

/** Returns the full length of the handshake message (header included) after checking it is a ClientHello. */
function readHandshakeHeader(handshake: Uint8Array): number {
  if (handshake[0] !== HANDSHAKE_TYPE_CLIENT_HELLO) {
    throw malformed(`expected handshake type 1 (ClientHello), received ${handshake[0]}`);
  }

  const bodyLength = (handshake[1]! << 16) | (handshake[2]! << 8) | handshake[3]!;
  if (bodyLength + HANDSHAKE_HEADER_BYTES > MAX_CLIENT_HELLO_BYTES) {
    throw new TlsError('WG_TLS_CLIENT_HELLO_TOO_LARGE', `ClientHello is too large: the maximum is ${MAX_CLIENT_HELLO_BYTES} bytes, the client announced ${bodyLength + HANDSHAKE_HEADER_BYTES}.`);
  }

  return bodyLength + HANDSHAKE_HEADER_BYTES;
}

function parseClientHelloBody(body: Uint8Array): ClientHello {
  const reader = new ByteReader(body, 'ClientHello');

  const legacyVersion = reader.uint16('legacy_version');
  reader.skip(32, 'random');
  reader.vector(1, 'legacy_session_id', 0, 32);
  reader.vector(2, 'cipher_suites', 2, 0xfffe);
  reader.vector(1, 'legacy_compression_methods', 1, 0xff);

  let supportedVersions: number[] = [];
  let supportedGroups: number[] | undefined;
  let keyShareGroups: number[] = [];
  let serverName: string | undefined;

  // TLS 1.2 allows a ClientHello without extensions (RFC 5246 section 7.4.1.2).
  if (reader.remaining > 0) {
    const extensions = new ByteReader(reader.vector(2, 'extensions', 0, 0xffff), 'ClientHello extensions');
    const seen = new Set<number>();

    while (extensions.remaining > 0) {
      const type = extensions.uint16('extension type');
      const data = extensions.vector(2, `extension 0x${type.toString(16).padStart(4, '0')}`, 0, 0xffff);

      // RFC 8446 section 4.2: there MUST NOT be more than one extension of the same type.
      if (seen.has(type)) throw malformed(`extension 0x${type.toString(16).padStart(4, '0')} appears more than once`);
      seen.add(type);

      if (type === EXTENSION_SUPPORTED_GROUPS) supportedGroups = parseSupportedGroups(data);
      else if (type === EXTENSION_KEY_SHARE) keyShareGroups = parseKeyShare(data);
      else if (type === EXTENSION_SUPPORTED_VERSIONS) supportedVersions = parseSupportedVersions(data);
      else if (type === EXTENSION_SERVER_NAME) serverName = parseServerName(data);
    }
  }

  reader.expectEnd();

  return Object.freeze({ legacyVersion, supportedVersions, supportedGroups, keyShareGroups, serverName });
}

function parseSupportedGroups(data: Uint8Array): number[] {
  const reader = new ByteReader(data, 'supported_groups');
  const list = new ByteReader(reader.vector(2, 'named_group_list', 2, 0xfffe), 'named_group_list');
  reader.expectEnd();

  return list.uint16List('named group');
}

function parseSupportedVersions(data: Uint8Array): number[] {
  const reader = new ByteReader(data, 'supported_versions');
  const list = new ByteReader(reader.vector(1, 'versions', 2, 254), 'versions');
  reader.expectEnd();

  return list.uint16List('version');
}

function parseKeyShare(data: Uint8Array): number[] {
  const reader = new ByteReader(data, 'key_share');
  const entries = new ByteReader(reader.vector(2, 'client_shares', 0, 0xffff), 'client_shares');
  reader.expectEnd();

  const groups: number[] = [];
  while (entries.remaining > 0) {
    const group = entries.uint16('KeyShareEntry.group');
    entries.vector(2, 'KeyShareEntry.key_exchange', 1, 0xffff);

    // RFC 8446 section 4.2.8: clients MUST NOT offer multiple KeyShareEntry values for the same group.
    if (groups.includes(group)) throw malformed(`key_share offers group 0x${group.toString(16).padStart(4, '0')} more than once`);
    groups.push(group);
  }

  return groups;
}

function parseServerName(data: Uint8Array): string | undefined {
  const reader = new ByteReader(data, 'server_name');
  const list = new ByteReader(reader.vector(2, 'server_name_list', 1, 0xffff), 'server_name_list');
  reader.expectEnd();

  let hostName: string | undefined;
  while (list.remaining > 0) {
    const nameType = list.uint8('name_type');
    const name = list.vector(2, 'HostName', 1, 0xffff);
    if (nameType === 0 && hostName === undefined) hostName = Buffer.from(name).toString('latin1');
  }

  return hostName;
}

/** A bounds-checked reader over one TLS structure; every overrun is a coded error naming the field. */
class ByteReader {
  readonly #bytes: Uint8Array;
  readonly #structure: string;
  #offset = 0;

  constructor(bytes: Uint8Array, structure: string) {
    this.#bytes = bytes;
    this.#structure = structure;
  }

  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  uint8(field: string): number {
    this.#require(1, field);
    return this.#bytes[this.#offset++]!;
  }

  uint16(field: string): number {
    this.#require(2, field);
    const value = readUint16(this.#bytes, this.#offset);
    this.#offset += 2;
    return value;
  }

  skip(length: number, field: string): void {
    this.#require(length, field);
    this.#offset += length;
  }

  /** Reads a `<min..max>` vector whose length prefix takes `prefixBytes` bytes (RFC 8446 section 3.4). */
  vector(prefixBytes: 1 | 2, field: string, min: number, max: number): Uint8Array {
    const length = prefixBytes === 1 ? this.uint8(`${field} length`) : this.uint16(`${field} length`);
    if (length < min || length > max) {
      throw malformed(`${this.#structure} field ${field} has length ${length}, expected ${min}..${max}`);
    }

    this.#require(length, field);
    const value = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return value;
  }

  uint16List(field: string): number[] {
    if (this.remaining % 2 !== 0) throw malformed(`${this.#structure} has an odd length ${this.remaining}, expected a list of 2-byte ${field} values`);

    const values: number[] = [];
    while (this.remaining > 0) values.push(this.uint16(field));
    return values;
  }

  expectEnd(): void {
    if (this.remaining !== 0) throw malformed(`${this.#structure} has ${this.remaining} unexpected trailing bytes`);
  }

  #require(length: number, field: string): void {
    if (this.remaining < length) {
      throw malformed(`${this.#structure} ends inside field ${field}: ${length} bytes needed, ${this.remaining} left`);
    }
  }
}

function readUint16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

function concat(parts: readonly Uint8Array[], length: number): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
}

function malformed(detail: string): TlsError {
  return new TlsError('WG_TLS_MALFORMED_CLIENT_HELLO', `Malformed TLS ClientHello: ${detail}. The client is not a conforming TLS implementation.`);
}
