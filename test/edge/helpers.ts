import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

import type { Test } from 'tap';

import { ensureDevCertificates, type DevCertificates } from '../../certs/dev-certificates.ts';

/** Creates development certificates in a temporary directory removed after the test. */
export async function createTestCertificates(t: Test): Promise<DevCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'wgtest-edge-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return ensureDevCertificates(join(dir, 'certs'), ['localhost']);
}

/** Captures the first bytes a TLS client sends: its ClientHello records. */
export async function captureClientHello(options: ConnectionOptions = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const server = createServer((socket) => {
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const total = Buffer.concat(chunks);
      if (total.length >= 5 && total.length >= 5 + total.readUInt16BE(3)) socket.destroy();
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  await new Promise<void>((resolve) => {
    const client = tlsConnect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
    client.on('error', () => resolve());
    client.on('close', () => resolve());
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));

  return Buffer.concat(chunks);
}

export interface HttpsResult {
  readonly status: number;
  readonly body: string;
  /** The group the client saw, from `getEphemeralKeyInfo()`, in Wardgate's names. */
  readonly clientGroup: string;
  readonly clientProtocol: string;
}

/** Sends one HTTPS GET with `options` and returns the response and the client's view of the key exchange. */
export function httpsGet(port: number, path: string, options: RequestOptions & ConnectionOptions): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, agent: false, servername: 'localhost', ...options }, (res) => {
      const socket = res.socket as import('node:tls').TLSSocket;
      const info = socket.getEphemeralKeyInfo() as { name?: string } | null;
      const clientProtocol = socket.getProtocol() ?? 'unknown';
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({
        status: res.statusCode ?? 0,
        body: Buffer.concat(chunks).toString('utf8'),
        clientGroup: clientGroupName(info?.name),
        clientProtocol,
      }));
    });
    req.on('error', reject);
    req.end();
  });
}

function clientGroupName(name: string | undefined): string {
  if (name === 'prime256v1') return 'P-256';
  if (name === 'secp384r1') return 'P-384';
  return name ?? 'none';
}
