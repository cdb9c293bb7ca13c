import type { IncomingMessage } from 'node:http';
import { REDACTED } from '../patient-target.ts';
import type { Decision } from '../../policy/decision.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import type { Principal } from '../identity/principal.ts';
import type { PreparedRequest } from '../pipeline/prepare.ts';
import type { AuditPort, Dependency } from '../ports.ts';
import { decisionEntry } from './decision-entry.ts';

/** Facts the request pipeline passes about one decided request. */
export interface RequestAuditFacts {
  readonly traceId: string;
  readonly tls: { readonly protocol: string; readonly group: string };
  readonly prepared: PreparedRequest | null;
  readonly principal?: Principal | null;
  readonly decision: Decision;
  readonly result?: ScoreResult | null;
  readonly policyHash?: string;
  readonly failedDependency?: Dependency;
  /** The break-glass claim that applies to this request, with its written justification and reason code. */
  readonly breakGlass?: { readonly justification: string; readonly reason_code: string };
}

/**
 * Appends the `decision` record of one request to the audit trail, if there is one. Works
 * for requests decided before routing (the path and address then come from the raw
 * request) as well as after scoring. Never throws.
 */
export function auditRequest(audit: AuditPort | undefined, req: IncomingMessage, facts: RequestAuditFacts): void {
  if (!audit) return;

  const prepared = facts.prepared?.ok ? facts.prepared : null;
  const route = prepared?.route ?? null;
  const failMode = facts.failedDependency && route ? route.fail_mode[facts.failedDependency] : undefined;
  try {
    audit.append(
      decisionEntry({
        traceId: facts.traceId,
        principal: facts.principal ?? null,
        clientIp: prepared?.clientIp ?? stripIpv4Mapping(req.socket?.remoteAddress ?? ''),
        host: prepared?.host ?? String(req.headers.host ?? '').slice(0, 255),
        routeId: route?.id ?? null,
        method: req.method ?? '',
        // A target that failed normalization is not recorded, because its odd segments could put a
        // patient id where the pseudonymizer does not look for one. The reason code gives the cause.
        path: prepared ? prepared.url.pathname + prepared.url.search : REDACTED,
        decision: facts.decision,
        result: facts.result ?? null,
        policyHash: facts.policyHash,
        tls: facts.tls,
        failedDependency: facts.failedDependency,
        failMode,
        breakGlass: facts.breakGlass,
      }),
    );
  } catch {
    // The audit port never throws; this guards against a malformed request object only.
  }
}

/** Returns the decision recorded for a request that Wardgate rejected or redirected before the policy ran. */
export function edgeDecision(action: Decision['action'], rule: string, reason: string): Decision {
  return { action, rule, reasons: [reason], risk: 0 };
}

function stripIpv4Mapping(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
