import { Agent as HttpAgent, STATUS_CODES, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable, type Duplex } from 'node:stream';

import httpProxy from 'http-proxy';

import { wantsHtml } from '../enforce/responses.ts';
import { HttpError } from '../http/errors.ts';
import { normalizePath } from '../http/normalize-path.ts';
import type { RouteConfig } from '../routing/router.ts';
import { removeWardgateCookies, removeWardgateSetCookies } from './cookies.ts';
import { ForwardError } from './errors.ts';
import { replayBodyOf } from './replay-body.ts';
import type { Tracer } from '@opentelemetry/api';
import type { WardgateMetrics } from '../telemetry/metrics.ts';
import { traceUpstream } from '../telemetry/upstream-span.ts';

/** Options of `createForwarder`. */
export interface ForwarderOptions {
  /** CA certificates (PEM) trusted for `https:` upstreams; when set they replace the default trust store. */
  readonly upstreamCa?: string;
  /** OpenSSL group list offered to `https:` upstreams (default `X25519MLKEM768:X25519:P-256`). */
  readonly groups?: string;
  /** Time in milliseconds an upstream may stay silent before the request fails with 502 (default 60000). */
  readonly upstreamTimeoutMs?: number;
  /** Called with every upstream failure so the pipeline can log it. The client has already received its 502 by then. */
  readonly onError?: (error: ForwardError, req: IncomingMessage) => void;
  /** Called with the names of `__Host-wardgate*` cookies an upstream tried to set; those Set-Cookie headers were dropped. */
  readonly onSetCookieDropped?: (names: string[], req: IncomingMessage) => void;
  /** When set, every upstream request gets a CLIENT span under the request's server span and carries its `traceparent`. */
  readonly tracer?: Tracer;
  /** Receives the upstream latency of every forwarded request. */
  readonly metrics?: WardgateMetrics;
}

/** Sends allowed requests to their route's upstream. */
export interface Forwarder {
  /**
   * Forwards an HTTP request. The path sent upstream is `normalizePath(req.url)`; the
   * headers in `headersToSet` replace any the request carries. Sends a 502 response when the upstream fails.
   * `onUpstreamResponse` is called once when the upstream's response headers arrive, never
   * when the request fails before that.
   */
  web(req: IncomingMessage, res: ServerResponse, route: RouteConfig, headersToSet: Readonly<Record<string, string>>, onUpstreamResponse?: () => void): void;
  /**
   * Forwards a WebSocket upgrade request the same way. `onUpstreamResponse` is called once when
   * the upstream responds, with 101 or any other status.
   */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, route: RouteConfig, headersToSet: Readonly<Record<string, string>>, onUpstreamResponse?: () => void): void;
  /** Closes idle upstream connections. */
  close(): void;
}

const DEFAULT_GROUPS = 'X25519MLKEM768:X25519:P-256';
const DEFAULT_UPSTREAM_TIMEOUT_MS = 60_000;

/**
 * Creates a forwarder over `http-proxy` with keep-alive agents. Wardgate sets X-Forwarded-*
 * itself (`xfwd` is off), Wardgate's cookies are removed from the Cookie header sent upstream,
 * and upstream Set-Cookie headers for `__Host-wardgate*` names are dropped.
 *
 * @throws {ForwardError} `WG_FORWARD_INVALID_OPTION` naming the option.
 */
export function createForwarder(options: ForwarderOptions = {}): Forwarder {
  const timeoutMs = options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new ForwardError('WG_FORWARD_INVALID_OPTION', `Option forward.upstreamTimeoutMs is invalid: expected a positive integer number of milliseconds, received ${JSON.stringify(timeoutMs)}.`);
  }
  if (options.upstreamCa !== undefined && (typeof options.upstreamCa !== 'string' || !options.upstreamCa.includes('-----BEGIN CERTIFICATE-----'))) {
    throw new ForwardError('WG_FORWARD_INVALID_OPTION', 'Option forward.upstreamCa is invalid: expected PEM certificates ("-----BEGIN CERTIFICATE-----").');
  }

  const httpAgent = new HttpAgent({ keepAlive: true });
  const httpsAgent = new HttpsAgent({
    keepAlive: true,
    ecdhCurve: options.groups ?? DEFAULT_GROUPS,
    minVersion: 'TLSv1.2',
    ...(options.upstreamCa === undefined ? {} : { ca: options.upstreamCa }),
  });

  const proxy = httpProxy.createProxyServer({ xfwd: false, ws: true, changeOrigin: true, proxyTimeout: timeoutMs });
  if (options.tracer) traceUpstream(proxy, { tracer: options.tracer, metrics: options.metrics });

  proxy.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage, res: ServerResponse) => {
    // A 101 with Upgrade headers to a request without an upgrade: Node passes the socket here,
    // and without this listener the client's connection would close with no response.
    proxyReq.on('upgrade', (_proxyRes: IncomingMessage, upstreamSocket: Duplex) => {
      upstreamSocket.destroy();
      failInvalidStatus(req, res, 101);
    });

    // http-proxy leaves the upstream request running when the client goes away mid-response.
    res.once('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
  });

  const upstreamResponseListeners = new WeakMap<IncomingMessage, () => void>();
  const webRoutes = new WeakMap<IncomingMessage, RouteConfig>();
  /** Sends 502 for a final status that a plain HTTP response cannot carry, and reports the upstream as failed. */
  const failInvalidStatus = (req: IncomingMessage, res: ServerResponse, status: number): void => {
    upstreamResponseListeners.delete(req);
    const error = report(new Error(`its response had status ${status}, expected 200 to 999`), req, webRoutes.get(req)!);
    if (res.headersSent) res.destroy();
    else sendUnavailable(req, res, error);
  };
  const notifyUpstreamResponse = (req: IncomingMessage): void => {
    const listener = upstreamResponseListeners.get(req);
    upstreamResponseListeners.delete(req);
    listener?.();
  };

  proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage, clientSocket: Duplex) => {
    closeUpstreamWithClient(proxyReq, clientSocket);
    const reportDropped = (names: string[]): void => options.onSetCookieDropped?.(names, req);
    proxyReq.prependListener('upgrade', (proxyRes: IncomingMessage) => {
      filterSetCookie(proxyRes, reportDropped);
      notifyUpstreamResponse(req);
    });
    proxyReq.prependListener('response', (proxyRes: IncomingMessage) => {
      filterSetCookie(proxyRes, reportDropped);
      notifyUpstreamResponse(req);
    });
  });

  proxy.on('proxyRes', (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => {
    const status = proxyRes.statusCode ?? 0;
    if (status < 200 || status > 999) {
      // Node's writeHead throws on a status below 100 from a stream callback, where nothing
      // catches it, so the whole process would stop. A 101 switches to no protocol on a plain request.
      proxyRes.resume();
      failInvalidStatus(req, res, status);
      return;
    }
    // writeHead throws on a control character in the reason phrase too, so such a phrase is
    // replaced by the standard one.
    if (!VALID_REASON.test(proxyRes.statusMessage ?? '')) proxyRes.statusMessage = STATUS_CODES[status] ?? '';
    filterSetCookie(proxyRes, (names) => options.onSetCookieDropped?.(names, req));
    notifyUpstreamResponse(req);
  });

  // http-proxy emits client resets here instead of calling the callback, and no response is possible then.
  proxy.on('econnreset', () => {});
  proxy.on('error', () => {});

  const report = (cause: unknown, req: IncomingMessage, route: RouteConfig): ForwardError => {
    const error = new ForwardError('WG_UPSTREAM_UNAVAILABLE', `Upstream ${route.upstream} of route ${route.id} is unavailable: ${(cause as Error).message ?? String(cause)}.`, { routeId: route.id, cause });
    options.onError?.(error, req);
    return error;
  };

  const targetFor = (route: RouteConfig) => ({
    target: route.upstream,
    agent: route.upstream.startsWith('https:') ? httpsAgent : httpAgent,
  });

  return {
    web(req, res, route, headersToSet, onUpstreamResponse) {
      try {
        req.url = normalizedTarget(req);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        sendBadRequest(res, error);
        return;
      }

      // A request replayed after a step-up carries its saved body here; its own stream is empty.
      const replayBody = replayBodyOf(req);
      const buffer = replayBody === undefined ? {} : { buffer: Readable.from([replayBody]) };
      if (onUpstreamResponse !== undefined) upstreamResponseListeners.set(req, onUpstreamResponse);
      webRoutes.set(req, route);
      prepareHeaders(req);
      proxy.web(req, res, { ...targetFor(route), ...buffer, headers: lowercaseKeys(headersToSet) }, (cause) => {
        const error = report(cause, req, route);
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        sendUnavailable(req, res, error);
      });
    },

    ws(req, socket, head, route, headersToSet, onUpstreamResponse) {
      socket.on('error', () => socket.destroy());
      try {
        req.url = normalizedTarget(req);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        socket.end(`HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\nx-wardgate-error: ${error.code}\r\n\r\n`);
        return;
      }

      if (onUpstreamResponse !== undefined) upstreamResponseListeners.set(req, onUpstreamResponse);
      prepareHeaders(req);
      proxy.ws(req, socket, head, { ...targetFor(route), headers: lowercaseKeys(headersToSet) }, (cause) => {
        report(cause, req, route);
        if (socket.writable) socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 35\r\n\r\n{"error":"WG_UPSTREAM_UNAVAILABLE"}');
        else socket.destroy();
      });
    },

    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
      proxy.close();
    },
  };
}

/**
 * Destroys the upstream socket of an upgraded request once the client's socket closes, for any
 * reason. http-proxy 1.18 ends the upstream socket only when the client's socket ends or emits
 * an error, so a client socket that Wardgate destroys (sign-out, an expired break-glass grant)
 * would otherwise leave the upstream connection open.
 */
function closeUpstreamWithClient(proxyReq: ClientRequest, clientSocket: Duplex): void {
  let upstreamSocket: Duplex | undefined;
  clientSocket.once('close', () => upstreamSocket?.destroy());
  proxyReq.on('upgrade', (_proxyRes: IncomingMessage, socket: Duplex) => {
    upstreamSocket = socket;
    // The client's socket may have closed before the upstream's 101 response arrived.
    if (clientSocket.destroyed) socket.destroy();
  });
}

/** Builds the request target sent upstream from the normalized path and the unchanged query. */
function normalizedTarget(req: IncomingMessage): string {
  const { path, query } = normalizePath(req.url ?? '', req.method);
  return query === '' ? path : `${path}?${query}`;
}

/** A reason phrase that Node can write: tab, visible ASCII, space and obs-text (RFC 9112). */
const VALID_REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Removes Wardgate's cookies and `Expect` from the request before http-proxy copies its
 * headers, for plain requests and WebSocket upgrades alike. Doing it here, not in http-proxy's
 * `proxyReq` event, matters because http-proxy 1.18 skips that event for a request with
 * `Expect`. Node's server has already sent `100 Continue` itself.
 */
function prepareHeaders(req: IncomingMessage): void {
  delete req.headers.expect;
  const cookie = removeWardgateCookies(req.headers.cookie);
  if (cookie === undefined) delete req.headers.cookie;
  else req.headers.cookie = cookie;
}

function filterSetCookie(proxyRes: IncomingMessage, onDropped: (names: string[]) => void): void {
  const received = proxyRes.headers['set-cookie'] ?? [];
  const kept = removeWardgateSetCookies(proxyRes.headers['set-cookie']);
  if (received.length > (kept?.length ?? 0)) {
    onDropped(received.filter((entry) => !(kept ?? []).includes(entry)).map((entry) => entry.split('=')[0]!.trim().slice(0, 100)));
  }
  if (kept === undefined) delete proxyRes.headers['set-cookie'];
  else proxyRes.headers['set-cookie'] = kept;
}

function lowercaseKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

function sendBadRequest(res: ServerResponse, error: HttpError): void {
  const body = JSON.stringify({ error: error.code, message: error.message });
  res.writeHead(error.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendUnavailable(req: IncomingMessage, res: ServerResponse, error: ForwardError): void {
  const html = wantsHtml(req);
  const body = html
    ? '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Application unavailable</title></head><body><h1>Application unavailable</h1><p>The clinical application behind Wardgate is not responding. Try again in a minute; if it persists, call the service desk.</p></body></html>'
    : JSON.stringify({ error: error.code, message: `The upstream of route ${error.routeId} is unavailable. Try again later.`, route: error.routeId });

  res.writeHead(502, 'Bad Gateway', {
    'content-type': html ? 'text/html; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
