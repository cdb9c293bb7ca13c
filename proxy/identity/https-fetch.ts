import { channel } from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';

/** The subset of `fetch` that discovery, the token endpoint and jose's JWKS fetches use. */
export type HttpsFetch = (url: string, init?: { method?: string; headers?: Headers | Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<Response>;

const MAX_RESPONSE_BYTES = 1024 * 1024;
const TIMEOUT_MS = 5_000;

/**
 * Builds a fetch over `node:https` that trusts `ca` (PEM) in place of the system roots,
 * because global `fetch` cannot take a CA without undici's Agent, which is not a direct
 * dependency. Plain `http:` is allowed only for loopback hosts. Responses over 1 MiB and
 * requests slower than 5 s fail.
 */
export function createHttpsFetch(ca?: string): HttpsFetch {
  const fetchOnce = createUntimedFetch(ca);
  return async (url, init) => {
    const started = performance.now();
    try {
      return await fetchOnce(url, init);
    } finally {
      if (IDP_FETCH_CHANNEL.hasSubscribers) IDP_FETCH_CHANNEL.publish({ ms: performance.now() - started } satisfies IdpFetchEvent);
    }
  };
}

/**
 * Every fetch to the IdP or a JWKS endpoint publishes its duration here, so that metrics can
 * record IdP latency without the identity layer knowing about telemetry.
 */
export const IDP_FETCH_CHANNEL = channel('wardgate:idp-fetch');

export interface IdpFetchEvent {
  readonly ms: number;
}

function createUntimedFetch(ca?: string): HttpsFetch {
  return async (url, init = {}) => {
    const target = new URL(url);
    if (target.protocol !== 'https:' && !(target.protocol === 'http:' && isLoopback(target.hostname))) {
      throw new TypeError(`Only https: URLs are fetched, received ${target.protocol}//${target.host}.`);
    }

    const transport = target.protocol === 'https:' ? https : http;
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    if (init.body !== undefined) {
      headers['content-length'] = String(Buffer.byteLength(init.body));
    }

    return new Promise<Response>((resolve, reject) => {
      const request = transport.request(target, {
        method: init.method ?? 'GET',
        headers,
        ca,
        timeout: TIMEOUT_MS,
        signal: init.signal,
      }, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            request.destroy(new Error(`Response from ${target.origin} exceeds ${MAX_RESPONSE_BYTES} bytes.`));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            for (const item of Array.isArray(value) ? value : [value ?? '']) {
              responseHeaders.append(name, item);
            }
          }
          const status = response.statusCode ?? 502;
          const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
          resolve(new Response(body, { status, headers: responseHeaders }));
        });
        response.on('error', reject);
      });
      request.on('timeout', () => request.destroy(new Error(`Request to ${target.origin} timed out after ${TIMEOUT_MS} ms.`)));
      request.on('error', reject);
      request.end(init.body);
    });
  };
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}
