export { compilePolicy, type CompilePolicyOptions, type CompiledPolicy, type RuleTrace } from './compile.ts';
export { loadPolicyFile } from './load-file.ts';
export { PolicyError, PolicyValidationError, formatIssue, type PolicyErrorCode, type PolicyIssue, type PolicyIssueCode } from './errors.ts';
export type { Action, Decision, DecisionContext, RouteFacts, StepUpRequirement } from './decision.ts';
