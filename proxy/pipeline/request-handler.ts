import type { IncomingMessage, ServerResponse } from 'node:http';
import { REDACTED } from '../patient-target.ts';
import type { TLSSocket } from 'node:tls';
import type { Span, Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import type { PatientPaths } from '../../scorer/features/patient-paths.ts';
import type { AssertionSigner } from '../assertion/signer.ts';
import type { RouteConfig } from '../routing/router.ts';
import { sendError } from '../enforce/responses.ts';
import type { Principal } from '../identity/principal.ts';
import { completeAuthentication } from '../identity/route-access.ts';
import type { TrustedProxies } from '../http/trusted-proxies.ts';
import type { TlsFacts } from '../tls/listener.ts';
import type { AuthResult, Dependency, ForwarderPort, IdentityPort, PolicyPort, RouterPort, ScorerPort } from '../ports.ts';
import type { Oversight, OversightOutcome } from '../break-glass/oversight.ts';
import { failModeDecision } from './fail-modes.ts';
import { decideScored, forgetBlockedPatients, INVALID_PATIENT_ID_CODE, invalidPatientIds, scoreWithFailMode, type RequestFacts, type ScoreOutcome } from './decide.ts';
import type { AuditPort } from '../ports.ts';
import { auditRequest, edgeDecision } from '../audit/pipeline-audit.ts';
import { prepareRequest, type PreparedRequest } from './prepare.ts';
import { REPLAY_PATH } from '../identity/saved-request.ts';
import { observeShadow, type ShadowPort } from './shadow-mode.ts';
import { annotateTarget, endServerSpan, noteDecision, startServerSpan, type RequestTelemetry } from '../telemetry/server-span.ts';
import { isBrowserIconPath, observeResponseOnFinish } from './response-observation.ts';

export interface PipelineDependencies {
  readonly identity: IdentityPort;
  readonly scorer: ScorerPort;
  /** The compiled `scorer.patient_paths` that `scorer` was created with, for the 400 on an invalid patient id. */
  readonly patientPaths: PatientPaths;
  /** Returns the policy in force; hot reload swaps what it returns between requests. */
  readonly policy: () => PolicyPort;
  readonly router: RouterPort;
  readonly forwarder: ForwarderPort;
  readonly signer: AssertionSigner;
  readonly tracer: Tracer;
  readonly logger: Logger;
  readonly assertionHeader: string;
  readonly tlsFacts: (socket: TLSSocket) => TlsFacts;
  /** Peers whose X-Forwarded-For, -Host and -Proto are believed; none when absent. */
  readonly trustedProxies?: TrustedProxies;
  readonly health: () => Record<string, unknown>;
  readonly now: () => number;
  /** Break-glass, notices and the review queue; without it `notify` and `break_glass` decisions are blocked. */
  readonly oversight?: Oversight;
  /** Candidate policy compared with the active one on every decision (shadow mode); never enforced. */
  readonly shadow?: ShadowPort;
  /** Receives one `decision` record per request; absent in tests that do not audit. */
  readonly audit?: AuditPort;
  /** Metrics, patient-path redaction and trusted hops; without it paths stay out of spans and nothing is counted. */
  readonly telemetry?: RequestTelemetry;
}

/**
 * Builds the handler for every HTTP request on the listener: normalize, route, authenticate,
 * score, decide, enforce, record. Each request gets one server span whose trace id is also
 * the incident id shown on a block page.
 */
export function createRequestHandler(deps: PipelineDependencies) {
  return function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const span = startServerSpan(deps.tracer, req, deps.telemetry);
    const incidentId = span.spanContext().traceId;
    const log = deps.logger.child({ trace_id: incidentId });
    res.once('finish', () => endServerSpan(span, res.statusCode));
    res.once('close', () => {
      if (!res.writableFinished) endServerSpan(span, null);
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

  let prepared = prepareRequest(req, deps.router, deps.assertionHeader, deps.trustedProxies);
  if (prepared.ok && prepared.route && prepared.url.pathname === REPLAY_PATH && deps.identity.restoreSavedRequest) {
    // A POST kept across a step-up: its method, path and body replace this GET, then it is decided like any request.
    if (!(await deps.identity.restoreSavedRequest(req, res, prepared.url))) return;
    prepared = prepareRequest(req, deps.router, deps.assertionHeader, deps.trustedProxies);
  }
  if (!prepared.ok) {
    // The target failed normalization, so spans, logs and the audit trail record none of it.
    annotateTarget(span, REDACTED, null);
    log.info({ code: prepared.code, target: REDACTED }, 'request rejected before routing');
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision: edgeDecision('block', 'request.invalid', prepared.code) });
    // A request whose framing was in doubt leaves the connection unusable for another request.
    const headers: Record<string, string> = prepared.status === 405 ? { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' } : { connection: 'close' };
    sendError(req, res, prepared.status, prepared.code, prepared.message, incidentId, headers);
    return;
  }
  const { url, route } = prepared;
  annotateTarget(span, url.pathname + url.search, route);

  if (url.pathname === '/.wardgate/health') {
    sendJson(res, 200, deps.health());
    return;
  }
  if (url.pathname === '/.well-known/wardgate/jwks.json') {
    sendJson(res, 200, deps.signer.jwks, { 'cache-control': 'public, max-age=300' });
    return;
  }
  if (!route) {
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision: edgeDecision('block', 'route.not_found', 'WG_ROUTE_NOT_FOUND: no route is configured for this host and path') });
    sendError(req, res, 404, 'WG_ROUTE_NOT_FOUND', `No route is configured for host ${JSON.stringify(prepared.host)} and path ${JSON.stringify(url.pathname)}.`, incidentId);
    return;
  }
  if (await deps.identity.handleWardgateRoute(req, res, url)) return;

  const auth = completeAuthentication(await authenticateWithFailMode(deps, req, route, log), tls, route);
  if (auth === 'unavailable') {
    const decision = failModeDecision('redis', 'closed', 0);
    record(span, null, route, decision, null, 'redis');
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision, failedDependency: 'redis' });
    sendError(req, res, 503, 'WG_DEPENDENCY_UNAVAILABLE', 'Sign-in state is temporarily unavailable. Try again in a minute.', incidentId, { 'retry-after': '30' });
    return;
  }
  if (auth.kind === 'rejected' && auth.code === 'WG_AUTH_IDP_UNAVAILABLE') {
    // The IdP could not refresh the session's claims: the route's IdP fail mode decides.
    const decision = failModeDecision('idp', 'closed', 0);
    record(span, null, route, decision, null, 'idp');
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision, failedDependency: 'idp' });
    sendError(req, res, 503, auth.code, 'The sign-in service is temporarily unavailable. Try again in a minute.', incidentId, { 'retry-after': '30' });
    return;
  }
  if (auth.kind === 'rejected' && auth.status === 503) {
    // The identity layer reports an unreachable session store this way.
    record(span, null, route, failModeDecision('redis', 'closed', 0), null, 'redis');
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision: failModeDecision('redis', 'closed', 0), failedDependency: 'redis' });
    sendError(req, res, 503, auth.code, 'Sign-in state is temporarily unavailable. Try again in a minute.', incidentId, { 'retry-after': '30' });
    return;
  }
  if (auth.kind === 'rejected') {
    span.setAttribute('wardgate.auth.error', auth.code);
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision: edgeDecision('block', 'auth.rejected', `${auth.code}: ${auth.message}`) });
    const headers: Record<string, string> = auth.wwwAuthenticate ? { 'www-authenticate': auth.wwwAuthenticate } : {};
    sendError(req, res, auth.status, auth.code, auth.message, incidentId, headers);
    return;
  }
  if (deps.oversight && (await deps.oversight.handleRoute(req, res, prepared, auth, incidentId, log))) return;
  if (auth.kind === 'anonymous' && !route.public) {
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision: edgeDecision('step_up', 'auth.login_required', 'no session or token; the caller is sent to sign in') });
    await deps.identity.sendLoginRedirect(req, res, url.pathname + url.search);
    return;
  }

  const principal = auth.kind === 'authenticated' ? auth.principal : null;
  const invalid = invalidPatientIds(url.pathname, url.search.slice(1), deps.patientPaths);
  if (invalid) {
    // The client sent a patient id the scorer cannot parse: a client error, never a fail mode.
    const decision = edgeDecision('block', 'request.invalid_patient_id', `${INVALID_PATIENT_ID_CODE}: ${invalid.message}`);
    record(span, principal, route, decision, null, undefined);
    auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, principal, decision, policyHash: deps.policy().hash });
    log.info({ user: principal?.subject, route: route.id, code: INVALID_PATIENT_ID_CODE, source: invalid.detail?.source }, 'request rejected: invalid patient id');
    sendError(req, res, 400, INVALID_PATIENT_ID_CODE, invalid.message, incidentId);
    return;
  }
  const now = deps.now();
  const { decision, scored, context, outcome } = await evaluate(deps, req, prepared, auth, tls, now, log);
  record(span, principal, route, decision, scored.result, scored.failedDependency);
  if (deps.shadow !== undefined && context !== undefined) observeShadow(deps.shadow, context, decision, span, log, now);
  auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, principal, decision, result: scored.result, policyHash: deps.policy().hash, failedDependency: scored.failedDependency });
  log.info({ user: principal?.subject, route: route.id, action: decision.action, rule: decision.rule, risk: round(decision.risk) }, 'decision');

  const enforced = deps.oversight && outcome ? await deps.oversight.enforce({ req, res, prepared, principal, outcome, result: scored.result, incidentId, span, now }) : decision;
  // For a block this runs before the response goes out, so the client's next request finds the
  // patients withheld. When oversight sent its own page (enforced is null), the page has gone out.
  forgetBlockedPatients(deps.scorer, enforced ?? outcome?.decision ?? decision, scored);
  if (enforced === null) return;
  // Once the upstream responds, the request's patients count as known to the user. A request
  // that was blocked, only stepped up or failed upstream leaves its new patients unexplained.
  // Only the upstream's responses feed the response-side features (bytes, 403 and 404), as in
  // training and replay, where every status is the application's. Wardgate's own block and
  // step-up responses would otherwise raise denied_hour and make the next block likelier.
  const shownInput = principal && scored.result !== null ? scored.input : undefined;
  const onUpstreamResponse =
    shownInput === undefined
      ? undefined
      : () => {
          deps.scorer.recordShown?.(shownInput);
          if (!isBrowserIconPath(prepared.url.pathname)) observeResponseOnFinish(res, deps.scorer, { user: principal!.subject, groups: principal!.groups, time: now, routeId: route.id });
        };
  await enforce(deps, req, res, prepared, principal, enforced, incidentId, now, span, onUpstreamResponse);
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
): Promise<{ decision: Decision; scored: ScoreOutcome; context?: DecisionContext; outcome?: OversightOutcome }> {
  const principal = auth.kind === 'authenticated' ? auth.principal : null;
  const facts: RequestFacts = {
    route: prepared.route!,
    principal,
    method: req.method ?? 'GET',
    host: prepared.host,
    path: prepared.url.pathname,
    query: prepared.url.search.slice(1),
    ip: prepared.clientIp,
    userAgent: req.headers['user-agent'] ?? '',
    tls,
    elevatedAcr: auth.kind === 'authenticated' ? auth.elevatedAcr : [],
    time: now,
  };
  // An active break-glass grant is a fact the policy may read. The lookup does not depend on
  // the score, so its Redis round trip overlaps the scorer's.
  const grantLookup = deps.oversight?.breakGlassActive(principal, facts.route.id, now, log);
  const started = performance.now();
  const scored = await scoreWithFailMode(deps.scorer, facts, log);
  if (facts.principal) deps.telemetry?.metrics.recordLatency('scorer', performance.now() - started);
  const extra = grantLookup === undefined ? undefined : { breakGlassActive: await grantLookup };

  const policy = deps.policy();
  const { decision, context } = decideScored(policy, facts, scored, extra);
  if (!context || !deps.oversight) return { decision, scored, ...(context ? { context } : {}) };

  // A benign review label is looked up only for decisions it can change.
  const reviewedBenign = deps.oversight.needsBenignLabel(decision) && (await deps.oversight.reviewedBenign(principal, facts.route.id, scored.result, log));
  const outcome = deps.oversight.adjust(decision, { ...context, reviewedBenign }, policy);
  return { decision: outcome.decision, scored, context, outcome };
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
  onUpstreamResponse: (() => void) | undefined,
): Promise<void> {
  const route = prepared.route!;
  if (decision.action === 'allow') {
    const headers: Record<string, string> = { traceparent: `00-${incidentId}-${span.spanContext().spanId}-01` };
    if (principal) headers[deps.assertionHeader] = await deps.signer.assertionFor(principal, route.id, now);
    deps.forwarder.web(req, res, route, headers, onUpstreamResponse);
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
  if (decision.rule === 'request.invalid_input') {
    sendError(req, res, 400, 'WG_REQUEST_INVALID', decision.reasons[0] ?? 'The request is invalid.', incidentId);
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
    const result = await deps.identity.authenticate(req);
    if (result.kind !== 'rejected' || result.code !== 'WG_AUTH_IDP_UNAVAILABLE' || route.fail_mode.idp !== 'open') return result;
    log.warn({ route: route.id, dependency: 'idp', fail_mode: 'open' }, 'claims could not be refreshed; the route fails open, so the session keeps its current claims');
    return await deps.identity.authenticate(req, { keepClaimsWhenIdpDown: true });
  } catch (error) {
    // The session store is what tells who the caller is, so there is no fail-open path here.
    log.error({ err: error, route: route.id }, 'authentication failed because a dependency is unavailable');
    return 'unavailable';
  }
}

export function record(span: Span, principal: Principal | null, route: RouteConfig, decision: Decision, result: ScoreResult | null, failedDependency: Dependency | undefined): void {
  span.setAttributes({
    'wardgate.route': route.id,
    'wardgate.decision': decision.action,
    'wardgate.rule': decision.rule,
    'wardgate.risk': decision.risk,
    'wardgate.reasons': [...decision.reasons],
    'wardgate.fail_mode.decided': decision.rule.startsWith('fail_mode.'),
  });
  noteDecision(span, decision, result, route.id);
  if (principal) {
    span.setAttributes({ 'enduser.id': principal.subject, 'wardgate.auth.method': principal.method });
    if (principal.acr) span.setAttribute('wardgate.auth.acr', principal.acr);
    if (principal.device) span.setAttributes({ 'wardgate.auth.device': principal.device, 'wardgate.device': principal.device });
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

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
