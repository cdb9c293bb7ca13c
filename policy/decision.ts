import type { Principal } from '../proxy/identity/principal.ts';

/**
 * `notify` allows and tells the user the access is recorded and may be reviewed.
 * `break_glass` blocks, but lets the clinician claim emergency access with a written
 * justification and a reason code (see `Decision.breakGlass`).
 */
export type Action = 'allow' | 'notify' | 'step_up' | 'block' | 'break_glass';

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
  /** Present when `action` is `break_glass`: how long a claimed emergency access lasts and which reason codes are accepted. */
  readonly breakGlass?: BreakGlassOffer;
}

export interface BreakGlassOffer {
  /** Seconds the emergency access lasts once claimed. */
  readonly ttl: number;
  readonly reason_codes: readonly string[];
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
    /**
     * Names of the query parameters without their values, as `queryParameterNames` returns
     * them. The list is empty when the request has no query.
     */
    readonly queryParams: readonly string[];
  };
  readonly risk: number;
  readonly features: Readonly<Record<string, number>>;
  readonly tls: { readonly protocol: string; readonly group: string };
  /** Whether the session has a valid step-up elevation for the acr the rule requires. */
  readonly elevatedAcr?: readonly string[];
  /** Request time in milliseconds since the epoch; never read from the clock inside policy. */
  readonly time: number;
  /** Session facts for browser sessions: seconds since sign-in. */
  readonly session?: { readonly age_s: number };
  /** Whether an emergency (break-glass) access claimed by this user is active on this route. */
  readonly breakGlassActive?: boolean;
  /** Whether analysts labelled this user's pattern (route and top features) benign in the review queue. */
  readonly reviewedBenign?: boolean;
}
