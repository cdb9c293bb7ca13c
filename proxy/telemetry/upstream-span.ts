import type { ClientRequest, IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { defaultTextMapSetter, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type Server from 'http-proxy';
import type { WardgateMetrics } from './metrics.ts';
import { contextWithSpan, serverSpanOf } from './server-span.ts';

/** Options of {@link traceUpstream}. */
export interface UpstreamTracingOptions {
  readonly tracer: Tracer;
  readonly metrics?: WardgateMetrics;
}

const propagator = new W3CTraceContextPropagator();

/**
 * Wraps every HTTP request that `proxy` sends upstream in a CLIENT span, child of the
 * request's server span. The span starts when http-proxy creates the upstream request and
 * ends when the upstream response has been read, or on the request's error or close. The
 * `traceparent` header sent upstream carries this span's id, so the upstream's own spans
 * hang below it. The upstream latency histogram gets the same duration.
 *
 * WebSocket upgrades get the same span, ended when the upstream responds to the handshake.
 * Requests without a server span (no tracing in the pipeline) are left as they are.
 */
export function traceUpstream(proxy: Server, options: UpstreamTracingOptions): void {
  proxy.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage) => {
    const end = startClientSpan(proxyReq, req, options);
    if (!end) return;

    let responded = false;
    proxyReq.once('response', (proxyRes: IncomingMessage) => {
      responded = true;
      const status = proxyRes.statusCode ?? 0;
      proxyRes.once('end', () => end(status));
      proxyRes.once('close', () => end(status, proxyRes.complete ? undefined : new Error('upstream response ended before it was complete')));
    });
    proxyReq.once('error', (error: Error) => end(null, error));
    proxyReq.once('close', () => {
      // With a response, the response's own events end the span.
      if (!responded) end(null);
    });
  });

  // A WebSocket's span covers the handshake only, since the connection may stay open for hours.
  proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => {
    const end = startClientSpan(proxyReq, req, options);
    if (!end) return;

    proxyReq.once('upgrade', (proxyRes: IncomingMessage) => end(proxyRes.statusCode ?? 101));
    proxyReq.once('response', (proxyRes: IncomingMessage) => end(proxyRes.statusCode ?? 0));
    proxyReq.once('error', (error: Error) => end(null, error));
    proxyReq.once('close', () => end(null));
  });
}

type EndClientSpan = (status: number | null, error?: Error) => void;

/**
 * Starts the CLIENT span of one upstream request and puts its `traceparent` on the request.
 * Returns the function that ends it once, or null when the request has no server span.
 */
function startClientSpan(proxyReq: ClientRequest, req: IncomingMessage, options: UpstreamTracingOptions): EndClientSpan | null {
  const parent = serverSpanOf(req);
  if (!parent) return null;

  const target = upstreamAddress(proxyReq);
  const span = options.tracer.startSpan(
    proxyReq.method,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'http.request.method': proxyReq.method,
        'server.address': target.host,
        'server.port': target.port,
        'url.scheme': target.scheme,
      },
    },
    contextWithSpan(parent),
  );

  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpan(contextWithSpan(parent), span), carrier, defaultTextMapSetter);
  proxyReq.removeHeader('tracestate');
  for (const [name, value] of Object.entries(carrier)) proxyReq.setHeader(name, value);

  const started = performance.now();
  let ended = false;
  return (status, error) => {
    if (ended) return;
    ended = true;
    if (status !== null) span.setAttribute('http.response.status_code', status);
    if (error) {
      span.setAttribute('error.type', (error as NodeJS.ErrnoException).code ?? error.name);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    } else if (status === null) {
      span.setAttribute('error.type', 'aborted');
      span.setStatus({ code: SpanStatusCode.ERROR });
    } else if (status >= 400) {
      span.setAttribute('error.type', String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
    options.metrics?.recordLatency('upstream', performance.now() - started, { 'server.address': target.host });
  };
}

function upstreamAddress(proxyReq: ClientRequest): { host: string; port: number; scheme: string } {
  const scheme = proxyReq.protocol === 'https:' ? 'https' : 'http';
  const host = proxyReq.host.replace(/^\[|\]$/g, '');
  // With changeOrigin, http-proxy sets the Host header to the upstream's host and port.
  const portText = /:(\d{1,5})$/.exec(String(proxyReq.getHeader('host') ?? ''))?.[1];
  const port = portText ? Number(portText) : scheme === 'https' ? 443 : 80;
  return { host, port, scheme };
}
