import type { Decision } from '../../policy/decision.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import type { Principal } from '../identity/principal.ts';
import type { AuditEntry, Dependency } from '../ports.ts';

/** What the pipeline knows about one decided request. */
export interface DecisionFacts {
  readonly traceId: string;
  readonly principal: Principal | null;
  readonly clientIp: string;
  readonly host: string;
  readonly routeId: string | null;
  readonly method: string;
  /** Normalized path with query, in clear; the audit writer pseudonymises patient ids in it. */
  readonly path: string;
  readonly decision: Decision;
  readonly result?: ScoreResult | null;
  readonly policyHash?: string;
  readonly tls: { readonly protocol: string; readonly group: string };
  /** The dependency whose fail mode decided the request, if one did. */
  readonly failedDependency?: Dependency;
  readonly failMode?: 'open' | 'closed';
  /** The break-glass claim that applies to this request, if any. */
  readonly breakGlass?: { readonly justification: string; readonly reason_code: string };
}

/** Builds the `decision` audit entry for one request. */
export function decisionEntry(facts: DecisionFacts): AuditEntry {
  const { principal, decision, result } = facts;
  return {
    kind: 'decision',
    trace_id: facts.traceId,
    principal: principal ? { subject: principal.subject, method: principal.method, groups: [...principal.groups], acr: principal.acr } : null,
    device: principal?.device ?? null,
    client: { ip: facts.clientIp },
    host: facts.host,
    route: facts.routeId,
    method: facts.method,
    path: facts.path,
    risk: decision.risk,
    top: result ? result.top.map((item) => ({ name: item.name, value: item.value, contribution: item.contribution })) : [],
    action: decision.action,
    rule: decision.rule,
    reasons: [...decision.reasons],
    policy_hash: facts.policyHash ?? null,
    model_version: result?.modelVersion ?? null,
    tls: { protocol: facts.tls.protocol, group: facts.tls.group },
    fail_mode: facts.failedDependency ? { dependency: facts.failedDependency, mode: facts.failMode ?? 'closed' } : null,
    break_glass: facts.breakGlass ? { justification: facts.breakGlass.justification, reason_code: facts.breakGlass.reason_code } : undefined,
  };
}
