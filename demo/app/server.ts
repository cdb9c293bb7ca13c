import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { handleFhirRequest } from './fhir-api.ts';
import { decodeAssertion, renderNoteReceived, renderPatientList, renderPatientPage } from './front-end.ts';
import { generateDemoDataset, type DemoPatient } from './patients.ts';
import { acceptWebSocketEcho } from './websocket-echo.ts';

/** A running demo clinical application. */
export interface DemoApp {
  /** Base URL, such as `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly patients: readonly DemoPatient[];
  close(): Promise<void>;
}

const MAX_NOTE_BYTES = 64 * 1024;
const STREAM_CHUNKS = 200;
const STREAM_CHUNK_BYTES = 1024;

/**
 * Starts the demo clinical application on plain HTTP: the upstream behind Wardgate in the
 * demo and in tests. It serves a read-only FHIR API over 200 synthetic patients, a small
 * HTML front end, a WebSocket echo at `/ws`, and debug endpoints that echo what arrived.
 */
export async function startDemoApp(options: { port?: number; host?: string } = {}): Promise<DemoApp> {
  const dataset = generateDemoDataset();
  const host = options.host ?? '127.0.0.1';

  const server = createServer((req, res) => {
    try {
      handleRequest(req, res);
    } catch (error) {
      if (!res.headersSent) sendJson(res, 500, { error: 'internal_error', message: (error as Error).message });
      else res.destroy();
    }
  });

  // server.closeAllConnections() does not reach upgraded sockets, so close() destroys these.
  const upgradedSockets = new Set<import('node:stream').Duplex>();
  server.on('upgrade', (req, socket, head) => {
    upgradedSockets.add(socket);
    socket.once('close', () => upgradedSockets.delete(socket));
    if (req.url?.split('?')[0] === '/ws') acceptWebSocketEcho(req, socket, head);
    else socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });

  function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://demo.invalid');
    const user = decodeAssertion(req.headers['x-wardgate-assertion']);

    if (handleFhirRequest(dataset, req, res, url)) return;

    if (url.pathname === '/' && req.method === 'GET') {
      sendHtml(res, 200, renderPatientList(dataset, user));
    } else if (url.pathname.startsWith('/patients/') && req.method === 'GET') {
      const patient = dataset.patients.find((candidate) => candidate.id === url.pathname.slice('/patients/'.length));
      if (patient === undefined) sendJson(res, 404, { error: 'not_found', message: `No patient at ${url.pathname}` });
      else sendHtml(res, 200, renderPatientPage(dataset, patient, user));
    } else if (url.pathname === '/notes' && req.method === 'POST') {
      receiveNote(req, res, user);
    } else if (url.pathname === '/debug/headers') {
      sendJson(res, 200, { method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, user: user ?? null });
    } else if (url.pathname === '/debug/set-cookie') {
      res.setHeader('set-cookie', ['app_session=demo; Path=/; HttpOnly', '__Host-wardgate-session=forged; Path=/; Secure', '__Host-WARDGATE_x=forged; Path=/; Secure']);
      sendJson(res, 200, { ok: true });
    } else if (url.pathname === '/debug/stream') {
      streamChunks(res);
    } else if (url.pathname === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
    } else {
      sendJson(res, 404, { error: 'not_found', message: `No page at ${url.pathname}` });
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${urlHost}:${address.port}`,
    patients: dataset.patients,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      for (const socket of upgradedSockets) socket.destroy();
    }),
  };
}

function receiveNote(req: IncomingMessage, res: ServerResponse, user: ReturnType<typeof decodeAssertion>): void {
  const chunks: Buffer[] = [];
  let received = 0;

  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_NOTE_BYTES) {
      sendJson(res, 413, { error: 'note_too_large', message: `Notes are limited to ${MAX_NOTE_BYTES} bytes.` });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });

  req.on('end', () => {
    if (res.headersSent) return;

    const body = Buffer.concat(chunks).toString('utf8');
    const isJson = (req.headers['content-type'] ?? '').startsWith('application/json');
    let note: { patient: string; text: string };
    try {
      const fields = isJson ? JSON.parse(body) : Object.fromEntries(new URLSearchParams(body));
      note = { patient: String(fields.patient ?? ''), text: String(fields.text ?? '') };
    } catch {
      sendJson(res, 400, { error: 'invalid_note', message: 'The note body is not valid JSON.' });
      return;
    }

    if ((req.headers.accept ?? '').includes('application/json') || isJson) sendJson(res, 201, { received: note, user: user ?? null });
    else sendHtml(res, 201, renderNoteReceived(note.patient, note.text, user));
  });

  req.on('error', () => {});
}

/** Streams 200 chunks of 1 KiB, one per event-loop turn, so that tests can abort mid-response. */
function streamChunks(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  let sent = 0;

  const sendNext = (): void => {
    if (res.destroyed) return;
    if (sent === STREAM_CHUNKS) {
      res.end();
      return;
    }

    sent++;
    res.write(Buffer.alloc(STREAM_CHUNK_BYTES, 0x61));
    setTimeout(sendNext, 5);
  };

  sendNext();
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html) });
  res.end(html);
}
