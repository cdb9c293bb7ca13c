import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { defaultTextMapGetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { Decision } from '../../policy/decision.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import type { WardgateMetrics } from './metrics.ts';
import type { PatientPathRedactor } from './patient-redaction.ts';
import type { TrustedHops } from './trusted-hops.ts';

/** Telemetry dependencies of the request pipeline: metrics, path redaction and trusted hops. */
export interface RequestTelemetry {
  readonly metrics: WardgateMetrics;
  /** Turns patient ids in paths into pseudonyms; without it no path or query is recorded. */
  readonly redactor: PatientPathRedactor | null;
  readonly trustedHops: TrustedHops;
}

/** HTTP methods the semantic conventions name; any other is recorded as `_OTHER`. */
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);

const propagator = new W3CTraceContextPropagator();

interface ServerSpanState {
  readonly telemetry: RequestTelemetry | undefined;
  readonly method: string;
  readonly started: number;
  action: string;
  route: string;
  httpRoute: string | null;
  ended: boolean;
}

const states = new WeakMap<Span, ServerSpanState>();
const requestSpans = new WeakMap<IncomingMessage, Span>();

/**
 * Starts the SERVER span of a request with the HTTP semantic convention attributes known
 * before routing. A `traceparent` header makes this span its child only when the
 * connection comes from a trusted hop. From any other address the trace starts here.
 * Either way the incoming `traceparent` and `tracestate` are removed from the request, so
 * the upstream receives Wardgate's own trace context (see `traceUpstream`).
 */
export function startServerSpan(tracer: Tracer, req: IncomingMessage, telemetry: RequestTelemetry | undefined, fallbackName = 'HTTP'): Span {
  const remoteAddress = req.socket.remoteAddress ?? '';
  let parent: Context = ROOT_CONTEXT;
  if (telemetry?.trustedHops.has(remoteAddress)) {
    parent = propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
  }
  delete req.headers.traceparent;
  delete req.headers.tracestate;

  const original = req.method ?? '';
  const method = KNOWN_METHODS.has(original) ? original : '_OTHER';
  const host = parseHostHeader(req.headers.host);
  const attributes: Record<string, string | number> = {
    'http.request.method': method,
    'url.scheme': 'https',
    'network.protocol.name': 'http',
    'network.protocol.version': req.httpVersion,
    'client.address': stripIpv4Mapping(remoteAddress),
  };
  if (method === '_OTHER') attributes['http.request.method_original'] = original.slice(0, 32);
  if (host.name) attributes['server.address'] = host.name;
  const port = host.port ?? (req.socket as TLSSocket).localPort;
  if (port) attributes['server.port'] = port;
  if (req.socket.remotePort) attributes['client.port'] = req.socket.remotePort;
  const userAgent = req.headers['user-agent'];
  if (userAgent) attributes['user_agent.original'] = userAgent.slice(0, 512);

  const span = tracer.startSpan(method === '_OTHER' ? fallbackName : method, { kind: SpanKind.SERVER, attributes }, parent);
  states.set(span, { telemetry, method, started: performance.now(), action: 'none', route: '', httpRoute: null, ended: false });
  requestSpans.set(req, span);
  return span;
}

/** Returns the server span of a request, for the upstream client span's parent. */
export function serverSpanOf(req: IncomingMessage): Span | undefined {
  return requestSpans.get(req);
}

/**
 * Records the request target with patient ids pseudonymized (`url.path`, `url.query`) and,
 * once routed, `http.route` and the span name `METHOD route`. Without a redactor the target
 * is left out, since it may name a patient.
 */
export function annotateTarget(span: Span, target: string, route: { id: string; path_prefix: string } | null): void {
  const state = states.get(span);
  const redactor = state?.telemetry?.redactor;
  if (redactor) {
    const { path, query } = redactor.redact(target);
    span.setAttribute('url.path', path);
    if (query !== '') span.setAttribute('url.query', query);
  }
  if (!route || !state) return;

  const httpRoute = route.path_prefix.endsWith('/') ? `${route.path_prefix}*` : `${route.path_prefix}/*`;
  span.setAttributes({ 'http.route': httpRoute, 'wardgate.route': route.id });
  if (state.method !== '_OTHER') span.updateName(`${state.method} ${httpRoute}`);
  state.route = route.id;
  state.httpRoute = httpRoute;
}

/** Notes the decision for the request metrics and records the risk histogram. */
export function noteDecision(span: Span, decision: Decision, result: ScoreResult | null, routeId: string): void {
  const state = states.get(span);
  if (!state) return;
  state.action = decision.action;
  state.route = routeId;
  if (result) state.telemetry?.metrics.recordRisk(result.risk, routeId);
}

/**
 * Ends the server span with the response status (ERROR for 5xx, as the HTTP semantic
 * conventions require for servers) and counts the request. Safe to call more than once.
 */
export function endServerSpan(span: Span, statusCode: number | null): void {
  const state = states.get(span);
  if (state?.ended) return;
  if (statusCode !== null) {
    span.setAttribute('http.response.status_code', statusCode);
    if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  } else {
    span.setAttribute('error.type', 'client_closed');
  }
  if (state) {
    state.ended = true;
    state.telemetry?.metrics.recordRequest(state.action, state.route);
    state.telemetry?.metrics.recordServerRequest(performance.now() - state.started, { method: state.method, status: statusCode, route: state.httpRoute });
  }
  span.end();
}

/** Returns the active context with `span` in it, for starting children explicitly. */
export function contextWithSpan(span: Span): Context {
  return trace.setSpan(ROOT_CONTEXT, span);
}

function parseHostHeader(header: string | undefined): { name: string | null; port: number | null } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(?::(\d{1,5}))?$/.exec(header ?? '');
  if (!match) return { name: null, port: null };
  return { name: match[1]!.toLowerCase().replace(/^\[|\]$/g, ''), port: match[2] ? Number(match[2]) : null };
}

function stripIpv4Mapping(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
