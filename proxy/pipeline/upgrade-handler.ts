import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { SpanKind } from '@opentelemetry/api';
import { completeAuthentication } from '../identity/route-access.ts';
import { startServerSpan } from '../telemetry/server-span.ts';
import { prepareRequest } from './prepare.ts';
import { forgetBlockedPatients } from './decide.ts';
import { evaluate, record, type PipelineDependencies } from './request-handler.ts';
import { observeShadow } from './shadow-mode.ts';
import { auditRequest, edgeDecision } from '../audit/pipeline-audit.ts';
import type { DecisionContext } from '../../policy/decision.ts';
import type { OversightOutcome } from '../break-glass/oversight.ts';

/** Returns whether an upgrade was allowed only because the caller has an active break-glass grant. */
function dependsOnGrant(deps: PipelineDependencies, outcome: OversightOutcome | undefined, context: DecisionContext | undefined): boolean {
  if (outcome?.override === 'break_glass') return true;
  if (context?.breakGlassActive !== true) return false;

  const withoutGrant = deps.policy().decide({ ...context, breakGlassActive: false });
  return withoutGrant.action !== 'allow' && withoutGrant.action !== 'notify';
}

/**
 * Builds the handler for HTTP upgrade requests (WebSockets). They go through the same
 * authentication, scoring and policy as other requests; only an `allow` decision is
 * forwarded, since a WebSocket handshake cannot follow a login or step-up redirect.
 */
export function createUpgradeHandler(deps: PipelineDependencies) {
  return function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const span = startServerSpan(deps.tracer, req, deps.telemetry);
    const incidentId = span.spanContext().traceId;
    const log = deps.logger.child({ trace_id: incidentId });
    socket.on('error', (error) => log.debug({ err: error }, 'upgrade socket error'));
    socket.once('close', () => span.end());

    const refuse = (status: number, code: string): void => {
      span.setAttribute('http.response.status_code', status);
      const body = JSON.stringify({ error: code, incident_id: incidentId });
      socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    };

    (async () => {
      const tls = deps.tlsFacts(req.socket as TLSSocket);
      // Read before prepareRequest, which removes an Upgrade header that does not request a WebSocket.
      const websocket = String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
      const prepared = prepareRequest(req, deps.router, deps.assertionHeader, deps.trustedProxies, true);
      // Refusals before the policy runs are decisions too, and each gets its audit record.
      const audit = (rule: string, reason: string) => auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, decision: edgeDecision('block', rule, reason) });
      if (!prepared.ok) {
        audit('request.invalid', prepared.code);
        return refuse(prepared.status, prepared.code);
      }
      // Only WebSocket is forwarded as an upgrade. Another protocol, such as h2c, would be decided
      // and then dropped by the forwarder without a response.
      if (!websocket) {
        audit('request.invalid', 'WG_HTTP_UPGRADE_NOT_SUPPORTED');
        return refuse(400, 'WG_HTTP_UPGRADE_NOT_SUPPORTED');
      }
      if (!prepared.route) {
        audit('route.not_found', 'WG_ROUTE_NOT_FOUND');
        return refuse(404, 'WG_ROUTE_NOT_FOUND');
      }

      const auth = completeAuthentication(await deps.identity.authenticate(req), tls, prepared.route);
      if (auth.kind === 'rejected') {
        audit('auth.rejected', auth.code);
        return refuse(auth.status, auth.code);
      }
      if (auth.kind === 'anonymous' && !prepared.route.public) {
        audit('auth.login_required', 'WG_AUTH_REQUIRED');
        return refuse(401, 'WG_AUTH_REQUIRED');
      }

      const now = deps.now();
      const { decision, scored, context, outcome } = await evaluate(deps, req, prepared, auth, tls, now, log);
      const principal = auth.kind === 'authenticated' ? auth.principal : null;
      record(span, principal, prepared.route, decision, scored.result, scored.failedDependency);
      if (deps.shadow !== undefined && context !== undefined) observeShadow(deps.shadow, context, decision, span, log, now);
      auditRequest(deps.audit, req, { traceId: incidentId, tls, prepared, principal, decision, result: scored.result, policyHash: deps.policy().hash, failedDependency: scored.failedDependency });
      if (deps.oversight && outcome) deps.oversight.recordUpgrade({ req, prepared, principal, outcome, result: scored.result, incidentId, now, span });
      // A notify decision allows; a handshake cannot show the notice page, so none is shown.
      if (decision.action !== 'allow' && decision.action !== 'notify') {
        forgetBlockedPatients(deps.scorer, decision, scored);
        return refuse(403, 'WG_ACCESS_BLOCKED');
      }

      const headers: Record<string, string> = { traceparent: `00-${incidentId}-${span.spanContext().spanId}-01` };
      if (principal) headers[deps.assertionHeader] = await deps.signer.assertionFor(principal, prepared.route.id, now);
      // As for other requests, the patients count as shown once the upstream responds to the upgrade.
      const shownInput = scored.result === null ? undefined : scored.input;
      deps.forwarder.ws(req, socket, head, prepared.route, headers, shownInput === undefined ? undefined : () => deps.scorer.recordShown?.(shownInput));
      if (principal?.method === 'session' && principal.sessionId !== undefined) deps.identity.trackSocket?.(principal.sessionId, socket);
      // An emergency access ends with its grant, also for a WebSocket that is still open. That
      // holds for a grant override and for a policy rule that allows only while a grant is active.
      if (principal && dependsOnGrant(deps, outcome, context)) deps.oversight?.closeAtGrantExpiry(principal, prepared.route.id, socket, log);
    })().catch((error: unknown) => {
      log.error({ err: error }, 'upgrade failed with an unexpected error');
      refuse(500, 'WG_INTERNAL_ERROR');
    });
  };
}
