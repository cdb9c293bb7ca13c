export { compilePolicy, type CompilePolicyOptions, type CompiledPolicy, type RuleTrace } from './compile.ts';
export { loadPolicyFile, type LoadPolicyOptions } from './load-file.ts';
export { ShadowComparator, type DecidingPolicy, type ShadowComparatorOptions, type ShadowCounters, type ShadowDifference, type ShadowPairCount } from './shadow/shadow-comparator.ts';
export { PolicyError, PolicyValidationError, formatIssue, type PolicyErrorCode, type PolicyIssue, type PolicyIssueCode } from './errors.ts';
export type { Action, BreakGlassOffer, Decision, DecisionContext, RouteFacts, StepUpRequirement } from './decision.ts';
