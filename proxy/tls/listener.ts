import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

import { MAX_CLIENT_HELLO_BYTES, readClientHello, type ClientHello } from './client-hello.ts';
import { TlsError } from './errors.ts';
import { DEFAULT_GROUPS, parseGroupList, selectServerGroup } from './groups.ts';

/** Options of `createTlsListener`. */
export interface TlsListenerOptions {
  /** Server private key, PEM. */
  readonly key: string | Buffer;
  /** Server certificate chain, PEM. */
  readonly cert: string | Buffer;
  /** CA certificates that client certificates must chain to, PEM. */
  readonly ca?: string | Buffer;
  /** Certificate revocation lists (PEM) checked for client certificates; requires `ca`. Replace it later with `TlsListener.setCrl`. */
  readonly crl?: string | Buffer;
  /** Ask clients for a certificate. A client without one, or with an untrusted one, still connects but gets no `clientCertificate` fact. */
  readonly requestCert?: boolean;
  /** OpenSSL 3.5 group list in preference order (default `X25519MLKEM768:X25519:P-256`). */
  readonly groups?: string;
  /** Time in milliseconds a client has to send its complete ClientHello (default 10000). */
  readonly helloTimeoutMs?: number;
  /** Called when a connection is closed before the TLS handshake (not TLS, malformed, too large, timed out, truncated). */
  readonly onConnectionError?: (error: TlsError, remote: { readonly address?: string; readonly port?: number }) => void;
}

/** TLS properties of one connection, as the policy and the trace see them. */
export interface TlsFacts {
  /** Negotiated protocol version, such as `TLSv1.3`. */
  readonly protocol: string;
  /** Key exchange group, such as `X25519MLKEM768`, `X25519` or `P-256`; `unknown` when it cannot be determined. */
  readonly group: string;
  /** Verified client certificate; present only when it chains to `ca`. */
  readonly clientCertificate?: {
    readonly subject: string;
    /** Subject alternative names in Node's notation, such as `DNS:infusion-pump-17` or `URI:urn:example`. */
    readonly san: readonly string[];
    readonly fingerprint256: string;
  };
  /** OpenSSL's verification error (such as `CERT_REVOKED`) when the client presented a certificate that failed verification. */
  readonly clientCertificateError?: string;
}

/** An HTTPS listener that records the ClientHello of every connection. */
export interface TlsListener {
  /** The underlying server, for timeouts and `clientError` handling. Do not call its `listen`. */
  readonly server: HttpsServer;
  listen(port: number, host?: string): Promise<AddressInfo>;
  address(): AddressInfo | null;
  /**
   * Replaces the certificate revocation lists for new connections, keeping every other TLS
   * option. Connections already open keep the result of their handshake.
   *
   * @throws {TlsError} `WG_TLS_INVALID_OPTION` when OpenSSL rejects the CRL; the old one stays in force.
   */
  setCrl(crl: string | Buffer): void;
  /** Stops accepting connections and closes the open ones. */
  close(): Promise<void>;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
/** Bytes buffered before the hello is complete, record headers included; tiny records could otherwise multiply the hello bound. */
const MAX_BUFFERED_BYTES = 2 * MAX_CLIENT_HELLO_BYTES;

const factsBySocket = new WeakMap<TLSSocket, TlsFacts>();

/**
 * Creates an HTTPS (HTTP/1.1) listener that offers X25519MLKEM768, then X25519, then P-256
 * by default, accepts TLS 1.2 and 1.3, and works out each connection's key exchange group from
 * the ClientHello it receives.
 *
 * A plain `net.Server` accepts each connection, reads until the ClientHello is complete, puts
 * the bytes back with `unshift()` and hands the socket to the TLS server. Connections that do
 * not start with a valid ClientHello are closed and reported to `onConnectionError`.
 *
 * @throws {TlsError} `WG_TLS_INVALID_OPTION` naming the option when an option is invalid.
 */
export function createTlsListener(options: TlsListenerOptions, onRequest: RequestHandler, onUpgrade?: UpgradeHandler): TlsListener {
  const groups = options.groups ?? DEFAULT_GROUPS;
  const preference = parseGroupList(groups, 'tls.groups');
  const helloTimeoutMs = options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
  assertPem(options.key, 'tls.key');
  assertPem(options.cert, 'tls.cert');
  if (options.ca !== undefined) assertPem(options.ca, 'tls.ca');
  if (options.crl !== undefined) assertPem(options.crl, 'tls.crl');
  if (options.crl !== undefined && options.ca === undefined) {
    throw new TlsError('WG_TLS_INVALID_OPTION', 'Option tls.crl is set without tls.ca: a CRL only applies to client certificates. Set tls.client_ca or remove tls.crl.');
  }
  if (!Number.isInteger(helloTimeoutMs) || helloTimeoutMs <= 0) {
    throw new TlsError('WG_TLS_INVALID_OPTION', `Option tls.helloTimeoutMs is invalid: expected a positive integer number of milliseconds, received ${JSON.stringify(helloTimeoutMs)}.`);
  }

  const contextOptions = {
    key: options.key,
    cert: options.cert,
    ca: options.ca,
    ...(options.crl === undefined ? {} : { crl: options.crl }),
    ecdhCurve: groups,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
  } as const;
  let server: HttpsServer;
  try {
    server = createHttpsServer({
      ...contextOptions,
      requestCert: options.requestCert ?? false,
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    }, onRequest);
  } catch (cause) {
    throw new TlsError('WG_TLS_INVALID_OPTION', `Options tls.key, tls.cert, tls.ca or tls.groups are invalid: OpenSSL rejected them (${(cause as Error).message}). Check the PEM files and the group list.`);
  }

  if (onUpgrade !== undefined) server.on('upgrade', onUpgrade);

  const hellos = new Map<string, { readonly raw: Socket; readonly hello: ClientHello }>();
  const pendingSockets = new Set<Socket>();

  server.prependListener('secureConnection', (tlsSocket: TLSSocket) => {
    const key = connectionKey(tlsSocket);
    const entry = hellos.get(key);
    hellos.delete(key);
    factsBySocket.set(tlsSocket, buildFacts(tlsSocket, entry?.hello, preference));
  });

  const front = createNetServer((raw) => {
    pendingSockets.add(raw);
    readHelloThenHandOver(raw, helloTimeoutMs, {
      onHello(hello, bytes) {
        pendingSockets.delete(raw);
        const key = connectionKey(raw);
        hellos.set(key, { raw, hello });
        raw.once('close', () => {
          if (hellos.get(key)?.raw === raw) hellos.delete(key);
        });

        raw.unshift(bytes);
        server.emit('connection', raw);
      },
      onError(error) {
        pendingSockets.delete(raw);
        options.onConnectionError?.(error, { address: raw.remoteAddress, port: raw.remotePort });
      },
    });
  });

  return {
    server,
    listen: (port, host) => new Promise((resolve, reject) => {
      front.once('error', reject);
      front.listen(port, host, () => {
        front.removeListener('error', reject);
        resolve(front.address() as AddressInfo);
      });
    }),
    address: () => front.address() as AddressInfo | null,
    setCrl: (crl) => {
      assertPem(crl, 'tls.crl');
      if (options.ca === undefined) {
        throw new TlsError('WG_TLS_INVALID_OPTION', 'Option tls.crl is set without tls.ca: a CRL only applies to client certificates. Set tls.client_ca or remove tls.crl.');
      }
      try {
        // A new secure context also gets new session ticket keys, so no client can resume a
        // session that was verified against the old CRL.
        server.setSecureContext({ ...contextOptions, crl });
      } catch (cause) {
        throw new TlsError('WG_TLS_INVALID_OPTION', `Option tls.crl is invalid: OpenSSL rejected it (${(cause as Error).message}). The previous CRL stays in force; check the file.`);
      }
    },
    close: () => new Promise((resolve) => {
      front.close(() => resolve());
      for (const socket of pendingSockets) socket.destroy();
      server.closeAllConnections();
      server.close();
    }),
  };
}

/**
 * Returns the TLS facts of a connection accepted by a `createTlsListener` listener. For any
 * other TLS socket the group is `unknown` and no client certificate is reported.
 */
export function getTlsFacts(socket: TLSSocket): TlsFacts {
  return factsBySocket.get(socket) ?? Object.freeze({ protocol: socket.getProtocol?.() ?? 'unknown', group: 'unknown' });
}

interface HelloCallbacks {
  onHello(hello: ClientHello, bytes: Buffer): void;
  onError(error: TlsError): void;
}

function readHelloThenHandOver(raw: Socket, timeoutMs: number, callbacks: HelloCallbacks): void {
  let buffered: Buffer = Buffer.alloc(0);

  const finish = (): void => {
    clearTimeout(timer);
    raw.removeListener('data', onData);
    raw.removeListener('end', onEnd);
  };

  const fail = (error: TlsError): void => {
    finish();
    if (looksLikePlainHttp(buffered)) {
      // Someone typed http:// for an https:// address; tell them instead of resetting silently.
      raw.end(PLAIN_HTTP_REPLY, () => raw.destroy());
    } else {
      raw.destroy();
    }
    callbacks.onError(error);
  };

  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);

    let result;
    try {
      if (buffered.length > MAX_BUFFERED_BYTES) {
        throw new TlsError('WG_TLS_CLIENT_HELLO_TOO_LARGE', `ClientHello is too large: the client sent ${buffered.length} bytes without completing it, the maximum is ${MAX_BUFFERED_BYTES}.`);
      }
      result = readClientHello(buffered);
    } catch (error) {
      if (!(error instanceof TlsError)) throw error;
      fail(error);
      return;
    }

    if (!result.complete) return;

    finish();
    raw.pause();
    callbacks.onHello(result.hello, buffered);
  };

  const onEnd = (): void => {
    fail(new TlsError('WG_TLS_CLIENT_HELLO_TRUNCATED', `ClientHello is truncated: the client closed the connection after ${buffered.length} bytes, before the hello was complete.`));
  };

  const timer = setTimeout(() => {
    fail(new TlsError('WG_TLS_CLIENT_HELLO_TIMEOUT', `ClientHello timed out: no complete hello within ${timeoutMs} ms (${buffered.length} bytes received).`));
  }, timeoutMs);

  // Errors after the hand-over surface on the TLS socket too; this listener keeps an early reset from crashing the process.
  raw.on('error', () => {
    clearTimeout(timer);
  });
  raw.on('data', onData);
  raw.on('end', onEnd);
}

const PLAIN_HTTP_BODY = 'This port speaks HTTPS only. Use the https:// address of the application.\n';
const PLAIN_HTTP_REPLY = `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(PLAIN_HTTP_BODY)}\r\nconnection: close\r\n\r\n${PLAIN_HTTP_BODY}`;

/** True when the first bytes are an HTTP/1.x request line rather than a TLS record. */
function looksLikePlainHttp(bytes: Buffer): boolean {
  return /^[A-Z]{3,7} \S/.test(bytes.subarray(0, 16).toString('latin1'));
}

function buildFacts(socket: TLSSocket, hello: ClientHello | undefined, preference: ReturnType<typeof parseGroupList>): TlsFacts {
  const protocol = socket.getProtocol() ?? 'unknown';
  const group = hello === undefined ? 'unknown' : selectServerGroup(preference, hello, protocol, socket.getCipher()?.name);
  const presented = socket.getPeerX509Certificate();
  const peer = socket.authorized ? presented : undefined;

  if (presented !== undefined && peer === undefined) {
    return Object.freeze({ protocol, group, clientCertificateError: String(socket.authorizationError ?? 'UNKNOWN_ERROR') });
  }
  if (peer === undefined) return Object.freeze({ protocol, group });

  return Object.freeze({
    protocol,
    group,
    clientCertificate: Object.freeze({
      subject: peer.subject,
      san: Object.freeze(splitSubjectAltName(peer.subjectAltName)),
      fingerprint256: peer.fingerprint256,
    }),
  });
}

/** Splits Node's `subjectAltName` string ("DNS:a, IP Address:127.0.0.1") into its entries. */
function splitSubjectAltName(value: string | undefined): string[] {
  if (value === undefined || value === '') return [];

  return value.split(/, (?=(?:DNS|URI|IP Address|email|DirName|othername|Registered ID):)/);
}

function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function assertPem(value: unknown, option: string): void {
  const text = Buffer.isBuffer(value) ? value.toString('latin1') : value;
  if (typeof text !== 'string' || !text.includes('-----BEGIN ')) {
    throw new TlsError('WG_TLS_INVALID_OPTION', `Option ${option} is invalid: expected PEM text, received ${text === undefined ? 'nothing' : typeof text === 'string' ? `${text.length} characters without a PEM header` : typeof text}.`);
  }
}
