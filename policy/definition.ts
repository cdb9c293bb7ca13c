import type { Action, BreakGlassOffer, StepUpRequirement } from './decision.ts';
import type { CidrBlock } from './engine/cidr.ts';
import type { TimeWindowSpec } from './engine/time-window.ts';
import type { SourcePosition } from './yaml/node-reader.ts';

/** A CEL expression as written in the policy file, with what is needed to point at it. */
export interface CelSource {
  readonly expression: string;
  /** Maps a character offset in `expression` to its position in the file. */
  readonly locate: (offset: number) => SourcePosition;
}

/** A named condition from the `conditions:` section. */
export interface ConditionDefinition {
  readonly id: string;
  readonly cel: CelSource;
}

/** The `match:` block of a rule; an absent list matches anything, a present one means any of its entries. */
export interface RuleMatchDefinition {
  readonly routes?: readonly string[];
  readonly hosts?: readonly string[];
  readonly paths?: readonly string[];
  readonly methods?: readonly string[];
  readonly groups?: readonly string[];
  readonly sensitivity?: readonly ('low' | 'normal' | 'high')[];
  readonly authenticated?: boolean;
  /** How the caller authenticated: `session`, `bearer` or `mtls`. */
  readonly authMethods?: readonly ('session' | 'bearer' | 'mtls')[];
  /** Device identity globs (`*` matches any run of characters). */
  readonly devices?: readonly string[];
  /** Client networks the request address must lie in. */
  readonly networks?: readonly CidrBlock[];
  /** Negotiated TLS key exchange groups, such as `X25519MLKEM768`. */
  readonly tlsGroups?: readonly string[];
  /** Local time window in the policy's time zone. */
  readonly time?: TimeWindowSpec;
}

/** One rule of the `rules:` section after structural validation. */
export interface RuleDefinition {
  readonly id: string;
  readonly description?: string;
  readonly match: RuleMatchDefinition;
  readonly when?: CelSource;
  readonly action: Action;
  readonly reason?: string;
  readonly stepUp?: StepUpRequirement;
  readonly breakGlass?: BreakGlassOffer;
  readonly position: SourcePosition;
}

/** A policy file after structural validation, before CEL compilation. */
export interface PolicyDefinition {
  readonly version: 1;
  /** `time_zone` from the file (IANA name or UTC offset such as `+01:00`), when given. */
  readonly timeZone?: string;
  readonly conditions: readonly ConditionDefinition[];
  readonly rules: readonly RuleDefinition[];
  /** `when` expressions of rules left out of `rules` for other problems, still checked so that one run reports every problem. */
  readonly unusedWhens: readonly { readonly ruleId: string; readonly cel: CelSource }[];
}
