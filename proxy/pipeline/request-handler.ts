import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import type { AssertionSigner } from '../assertion/signer.ts';
import type { RouteConfig } from '../routing/router.ts';
import { sendError } from '../enforce/responses.ts';
import type { Principal } from '../identity/principal.ts';
import type { AuthResult, Dependency, ForwarderPort, IdentityPort, PolicyPort, RouterPort, ScorerPort } from '../ports.ts';
import { failModeDecision, dependencyOfScorerError } from './fail-modes.ts';
import { prepareRequest, type PreparedRequest } from './prepare.ts';
import { observeResponseOnFinish } from './response-observation.ts';

export interface PipelineDependencies {
  readonly identity: IdentityPort;
  readonly scorer: ScorerPort;
  /** Returns the policy in force; hot reload swaps what it returns between requests. */
  readonly policy: () => PolicyPort;
  readonly router: RouterPort;
  readonly forwarder: ForwarderPort;
  readonly signer: AssertionSigner;
  readonly tracer: Tracer;
  readonly logger: Logger;
  readonly assertionHeader: string;
  readonly tlsFacts: (socket: TLSSocket) => { protocol: string; group: string };
  readonly health: () => Record<string, unknown>;
  readonly now: () => number;
}

/** Hybrid post-quantum groups that satisfy a route's `require_pq`. */
const POST_QUANTUM_GROUPS = new Set(['X25519MLKEM768', 'SecP256r1MLKEM768', 'SecP384r1MLKEM1024']);

/**
 * Builds the handler for every HTTP request on the listener: normalize, route, authenticate,
 * score, decide, enforce, record. Each request gets one server span whose trace id is also
 * the incident id shown on a block page.
 */
export function createRequestHandler(deps: PipelineDependencies) {
  return function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const span = deps.tracer.startSpan('wardgate.request', {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': req.method ?? '', 'server.address': hostOf(req) },
    });
    const incidentId = span.spanContext().traceId;
    const log = deps.logger.child({ trace_id: incidentId });
    res.once('finish', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    res.once('close', () => {
      if (!res.writableFinished) span.end();
    });

    handle(deps, req, res, span, incidentId, log).catch((error: unknown) => {
      log.error({ err: error }, 'request failed with an unexpected error');
      span.recordException(error as Error);
      sendError(req, res, 500, 'WG_INTERNAL_ERROR', 'Wardgate failed to process this request.', incidentId);
    });
  };
}

async function handle(deps: PipelineDependencies, req: IncomingMessage, res: ServerResponse, span: Span, incidentId: string, log: Logger): Promise<void> {
  const tls = deps.tlsFacts(req.socket as TLSSocket);
  span.setAttributes({ 'tls.protocol.version': tls.protocol, 'wardgate.tls.group': tls.group });

  const prepared = prepareRequest(req, deps.router, deps.assertionHeader);
  if (!prepared.ok) {
    log.info({ code: prepared.code, target: req.url?.slice(0, 200) }, 'request rejected before routing');
    sendError(req, res, prepared.status, prepared.code, prepared.message, incidentId);
    return;
  }
  const { url, route } = prepared;
  span.setAttributes({ 'url.path': url.pathname, 'wardgate.route': route?.id ?? '' });

  if (url.pathname === '/.wardgate/health') {
    sendJson(res, 200, deps.health());
    return;
  }
  if (url.pathname === '/.well-known/wardgate/jwks.json') {
    sendJson(res, 200, deps.signer.jwks, { 'cache-control': 'public, max-age=300' });
    return;
  }
  if (!route) {
    sendError(req, res, 404, 'WG_ROUTE_NOT_FOUND', `No route is configured for host ${JSON.stringify(prepared.host)} and path ${JSON.stringify(url.pathname)}.`, incidentId);
    return;
  }
  if (await deps.identity.handleWardgateRoute(req, res, url)) return;

  const auth = await authenticateWithFailMode(deps, req, route, log);
  if (auth === 'unavailable') {
    const decision = failModeDecision('redis', 'closed', 0);
    record(span, null, route, decision, null, 'redis');
    sendError(req, res, 503, 'WG_DEPENDENCY_UNAVAILABLE', 'Sign-in state is temporarily unavailable. Try again in a minute.', incidentId, { 'retry-after': '30' });
    return;
  }
  if (auth.kind === 'rejected' && auth.status === 503) {
    // The identity layer reports an unreachable session store this way.
    record(span, null, route, failModeDecision('redis', 'closed', 0), null, 'redis');
    sendError(req, res, 503, auth.code, 'Sign-in state is temporarily unavailable. Try again in a minute.', incidentId, { 'retry-after': '30' });
    return;
  }
  if (auth.kind === 'rejected') {
    span.setAttribute('wardgate.auth.error', auth.code);
    const headers: Record<string, string> = auth.wwwAuthenticate ? { 'www-authenticate': auth.wwwAuthenticate } : {};
    sendError(req, res, auth.status, auth.code, auth.message, incidentId, headers);
    return;
  }
  if (auth.kind === 'anonymous' && !route.public) {
    await deps.identity.sendLoginRedirect(req, res, url.pathname + url.search);
    return;
  }

  const principal = auth.kind === 'authenticated' ? auth.principal : null;
  const now = deps.now();
  const { decision, scored } = await evaluate(deps, req, prepared, auth, tls, now, log);
  if (principal && scored.result) observeResponseOnFinish(res, deps.scorer, { user: principal.subject, groups: principal.groups, time: now, routeId: route.id });
  record(span, principal, route, decision, scored.result, scored.failedDependency);
  log.info({ user: principal?.subject, route: route.id, action: decision.action, rule: decision.rule, risk: round(decision.risk) }, 'decision');

  await enforce(deps, req, res, prepared, principal, decision, incidentId, now, span);
}

/** Scores the request and decides it, applying the route's fail modes and `require_pq`. */
export async function evaluate(
  deps: PipelineDependencies,
  req: IncomingMessage,
  prepared: PreparedRequest & { ok: true },
  auth: AuthResult,
  tls: { protocol: string; group: string },
  now: number,
  log: Logger,
): Promise<{ decision: Decision; scored: ScoreOutcome }> {
  const route = prepared.route!;
  const principal = auth.kind === 'authenticated' ? auth.principal : null;
  const scored = await scoreWithFailMode(deps, req, prepared, principal, now, log);

  if (scored.failedDependency && route.fail_mode[scored.failedDependency] === 'closed') {
    return { decision: failModeDecision(scored.failedDependency, 'closed', 0), scored };
  }
  if (route.require_pq && !POST_QUANTUM_GROUPS.has(tls.group)) {
    const reason = `route ${route.id} requires a hybrid post-quantum TLS group (X25519MLKEM768); this connection negotiated ${tls.group}`;
    return { decision: { action: 'block', rule: 'route.require_pq', reasons: [reason], risk: scored.result?.risk ?? 0 }, scored };
  }

  const context: DecisionContext = {
    principal,
    route: { id: route.id, host: route.host, pathPrefix: route.path_prefix, sensitivity: route.sensitivity },
    request: { method: req.method ?? 'GET', host: prepared.host, path: prepared.url.pathname, ip: prepared.clientIp },
    risk: scored.result?.risk ?? 0,
    features: scored.result?.features ?? {},
    tls,
    elevatedAcr: auth.kind === 'authenticated' ? auth.elevatedAcr : [],
    time: now,
  };
  return { decision: deps.policy().decide(context), scored };
}

async function enforce(
  deps: PipelineDependencies,
  req: IncomingMessage,
  res: ServerResponse,
  prepared: PreparedRequest & { ok: true },
  principal: Principal | null,
  decision: Decision,
  incidentId: string,
  now: number,
  span: Span,
): Promise<void> {
  const route = prepared.route!;
  if (decision.action === 'allow') {
    const headers: Record<string, string> = { traceparent: `00-${incidentId}-${span.spanContext().spanId}-01` };
    if (principal) headers[deps.assertionHeader] = await deps.signer.assertionFor(principal, route.id, now);
    deps.forwarder.web(req, res, route, headers);
    return;
  }
  if (decision.action === 'step_up' && decision.stepUp && principal?.method === 'session') {
    await deps.identity.sendStepUp(req, res, decision.stepUp, prepared.url.pathname + prepared.url.search);
    return;
  }
  if (decision.action === 'step_up' && decision.stepUp) {
    // Bearer and certificate callers cannot step up through a browser redirect; the identity
    // layer answers them with the RFC 9470 challenge.
    await deps.identity.sendStepUp(req, res, decision.stepUp, prepared.url.pathname + prepared.url.search);
    return;
  }
  const status = decision.rule.startsWith('fail_mode.') ? 503 : 403;
  const message = decision.rule === 'route.require_pq'
    ? 'This application requires a post-quantum protected connection (TLS group X25519MLKEM768). Update your browser or client.'
    : 'Wardgate blocked this request.';
  sendError(req, res, status, status === 503 ? 'WG_DEPENDENCY_UNAVAILABLE' : 'WG_ACCESS_BLOCKED', message, incidentId);
}

async function authenticateWithFailMode(deps: PipelineDependencies, req: IncomingMessage, route: RouteConfig, log: Logger): Promise<AuthResult | 'unavailable'> {
  try {
    return await deps.identity.authenticate(req);
  } catch (error) {
    // The session store is what tells who the caller is, so there is no fail-open path here.
    log.error({ err: error, route: route.id }, 'authentication failed because a dependency is unavailable');
    return 'unavailable';
  }
}

interface ScoreOutcome {
  readonly result: ScoreResult | null;
  readonly failedDependency?: Dependency;
}

async function scoreWithFailMode(
  deps: PipelineDependencies,
  req: IncomingMessage,
  prepared: PreparedRequest & { ok: true },
  principal: Principal | null,
  now: number,
  log: Logger,
): Promise<ScoreOutcome> {
  if (!principal) return { result: null };
  const route = prepared.route!;
  try {
    const result = await deps.scorer.score({
      user: principal.subject,
      groups: principal.groups,
      time: now,
      ip: prepared.clientIp,
      userAgent: req.headers['user-agent'] ?? '',
      method: req.method ?? 'GET',
      host: prepared.host,
      path: prepared.url.pathname + prepared.url.search,
      routeId: route.id,
      sensitivity: route.sensitivity,
    });
    return { result };
  } catch (error) {
    const failedDependency = dependencyOfScorerError(error);
    log.warn({ err: error, route: route.id, dependency: failedDependency, fail_mode: route.fail_mode[failedDependency] }, 'scoring failed; applying the route fail mode');
    return { result: null, failedDependency };
  }
}

export function record(span: Span, principal: Principal | null, route: RouteConfig, decision: Decision, result: ScoreResult | null, failedDependency: Dependency | undefined): void {
  span.setAttributes({
    'wardgate.route': route.id,
    'wardgate.decision': decision.action,
    'wardgate.rule': decision.rule,
    'wardgate.risk': decision.risk,
    'wardgate.reasons': [...decision.reasons],
  });
  if (principal) {
    span.setAttributes({ 'enduser.id': principal.subject, 'wardgate.auth.method': principal.method });
    if (principal.acr) span.setAttribute('wardgate.auth.acr', principal.acr);
  }
  if (result) {
    span.setAttributes({
      'wardgate.model.version': result.modelVersion,
      'wardgate.top_features': result.top.map((item) => `${item.name}=${round(item.value)}`),
    });
  }
  if (failedDependency) span.setAttribute('wardgate.fail_mode', failedDependency);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

function hostOf(req: IncomingMessage): string {
  return (req.headers.host ?? '').toLowerCase();
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
