import type { Principal } from '../proxy/identity/principal.ts';

export type Action = 'allow' | 'step_up' | 'block';

/** Step-up requirement sent to the IdP (`acr_values`, `max_age`) and how long the elevation lasts. */
export interface StepUpRequirement {
  readonly acr_values: string;
  /** Maximum age of the authentication in seconds, sent as OIDC `max_age`. */
  readonly max_age: number;
  /** How long, in seconds, a successful step-up satisfies this rule. */
  readonly ttl: number;
}

/** The outcome of one request: the same object goes to the span, the audit record and the CLI. */
export interface Decision {
  readonly action: Action;
  /** Id of the rule that produced the decision; `default` when no rule matched. */
  readonly rule: string;
  readonly reasons: readonly string[];
  readonly risk: number;
  readonly stepUp?: StepUpRequirement;
}

/** A route as the policy sees it. */
export interface RouteFacts {
  readonly id: string;
  readonly host: string;
  readonly pathPrefix: string;
  readonly sensitivity: 'low' | 'normal' | 'high';
}

/** Everything a policy may look at when deciding one request. */
export interface DecisionContext {
  readonly principal: Principal | null;
  readonly route: RouteFacts;
  readonly request: {
    readonly method: string;
    readonly host: string;
    /** Normalized path without the query string. */
    readonly path: string;
    readonly ip: string;
  };
  readonly risk: number;
  readonly features: Readonly<Record<string, number>>;
  readonly tls: { readonly protocol: string; readonly group: string };
  /** Whether the session has a valid step-up elevation for the acr the rule requires. */
  readonly elevatedAcr?: readonly string[];
  /** Request time in milliseconds since the epoch; never read from the clock inside policy. */
  readonly time: number;
}
