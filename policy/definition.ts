import type { Action, StepUpRequirement } from './decision.ts';
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
  readonly position: SourcePosition;
}

/** A policy file after structural validation, before CEL compilation. */
export interface PolicyDefinition {
  readonly version: 1;
  readonly conditions: readonly ConditionDefinition[];
  readonly rules: readonly RuleDefinition[];
  /** `when` expressions of rules left out of `rules` for other problems, still checked so that one run reports every problem. */
  readonly unusedWhens: readonly { readonly ruleId: string; readonly cel: CelSource }[];
}
