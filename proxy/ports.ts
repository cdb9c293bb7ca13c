import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Decision, DecisionContext, StepUpRequirement } from '../policy/decision.ts';
import type { ResponseObservation, ScoreInput, ScoreResult } from '../scorer/types.ts';
import type { RouteConfig } from './routing/router.ts';
import type { Principal } from './identity/principal.ts';

/** What the request pipeline needs from the identity layer. */
export interface IdentityPort {
  handleWardgateRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
  /**
   * With `keepClaimsWhenIdpDown`, a session whose claims are due for a refresh keeps its
   * current claims when the IdP cannot be reached (the route's `fail_mode.idp: open`).
   */
  authenticate(req: IncomingMessage, options?: { readonly keepClaimsWhenIdpDown?: boolean }): Promise<AuthResult>;
  sendLoginRedirect(req: IncomingMessage, res: ServerResponse, returnTo: string): Promise<void> | void;
  sendStepUp(req: IncomingMessage, res: ServerResponse, requirement: StepUpRequirement, returnTo: string): Promise<void> | void;
  /** Restores a request kept across a step-up into `req`; returns false after sending an error response. */
  restoreSavedRequest?(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
  /** Registers an upgraded connection of a session, so that sign-out and revocation can close it. */
  trackSocket?(sessionId: string, socket: Duplex): void;
}

export type AuthResult =
  | { readonly kind: 'authenticated'; readonly principal: Principal; readonly elevatedAcr: readonly string[] }
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'rejected'; readonly status: number; readonly code: string; readonly message: string; readonly wwwAuthenticate?: string };

export interface ScorerPort {
  score(input: ScoreInput): Promise<ScoreResult>;
  /** Records the response side (status, bytes) after the response is sent; never awaited on the request path. */
  observeResponse?(observation: ResponseObservation): void;
  /** Forgets the patients of a request that was blocked or offered break-glass; never awaited on the request path. */
  forgetDenied?(input: ScoreInput): void;
  /** Records that the upstream responded to a scored request, so its patients count as known; never awaited on the request path. */
  recordShown?(input: ScoreInput): void;
}

/**
 * The audit trail as the pipeline uses it: one entry per decision, plus events such as
 * break-glass claims, review labels and gaps. `append` never throws and never waits for disk.
 */
export interface AuditPort {
  append(entry: AuditEntry): void;
}

export interface AuditEntry {
  /** `decision`, `break_glass`, `review_label`, `gap`, ... */
  readonly kind: string;
  readonly trace_id?: string;
  readonly [field: string]: unknown;
}

export interface PolicyPort {
  readonly hash: string;
  decide(context: DecisionContext): Decision;
}

export interface RouterPort {
  match(host: string, path: string): RouteConfig | undefined;
}

export interface ForwarderPort {
  /** Forwards an allowed request; `onUpstreamResponse` runs once when the upstream's response headers arrive. */
  web(req: IncomingMessage, res: ServerResponse, route: RouteConfig, headers: Record<string, string>, onUpstreamResponse?: () => void): void;
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, route: RouteConfig, headers: Record<string, string>, onUpstreamResponse?: () => void): void;
}

/** Which dependency failed when a fail mode decided a request. */
export type Dependency = 'redis' | 'scorer' | 'idp';
