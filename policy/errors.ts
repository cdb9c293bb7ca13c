/** Coded errors of the policy engine (`policy/`). */

/** Codes of problems found in a policy file or a policy test file; each one is a {@link PolicyIssue}. */
export type PolicyIssueCode =
  | 'WG_POLICY_FILE_TOO_LARGE'
  | 'WG_POLICY_INVALID_ENCODING'
  | 'WG_POLICY_YAML_SYNTAX'
  | 'WG_POLICY_DUPLICATE_KEY'
  | 'WG_POLICY_ALIAS_LIMIT'
  | 'WG_POLICY_UNKNOWN_KEY'
  | 'WG_POLICY_MISSING_KEY'
  | 'WG_POLICY_WRONG_TYPE'
  | 'WG_POLICY_INVALID_VALUE'
  | 'WG_POLICY_DUPLICATE_ID'
  | 'WG_POLICY_UNKNOWN_ROUTE'
  | 'WG_POLICY_CEL_SYNTAX'
  | 'WG_POLICY_CEL_TYPE'
  | 'WG_POLICY_CEL_COST'
  | 'WG_POLICY_CONDITION_CYCLE';

/** Codes of errors thrown by the policy engine. */
export type PolicyErrorCode =
  | 'WG_POLICY_INVALID'
  | 'WG_POLICY_FILE_READ_FAILED'
  | 'WG_POLICY_INVALID_OPTION'
  | 'WG_POLICY_SIGNATURE_MISSING'
  | 'WG_POLICY_SIGNATURE_INVALID'
  | 'WG_POLICY_SIGNING_KEY_INVALID';

/** One problem found in a policy file, with its position. Lines and columns start at 1. */
export interface PolicyIssue {
  readonly code: PolicyIssueCode;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Id of the rule (or named condition) the problem is in, when it is inside one. */
  readonly ruleId?: string;
  /** Expected content at this position, with a "did you mean" hint when one applies. */
  readonly expected: string;
  /** Actual content at this position. */
  readonly got: string;
}

/**
 * A failure of the policy engine. All of them are configuration problems found at load
 * time, so they map to HTTP 500 if one ever surfaces in a request.
 */
export class PolicyError extends Error {
  readonly code: PolicyErrorCode;
  readonly status = 500;

  constructor(code: PolicyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyError';
    this.code = code;
  }
}

/** Thrown by `compilePolicy` when a policy file is unusable; `issues` lists every problem found in one pass. */
export class PolicyValidationError extends PolicyError {
  readonly file: string;
  readonly issues: readonly PolicyIssue[];

  constructor(file: string, issues: readonly PolicyIssue[]) {
    const lines = issues.map(formatIssue);
    super('WG_POLICY_INVALID', `policy file ${file} is invalid (${issues.length} problem${issues.length === 1 ? '' : 's'}); fix these and reload:\n${lines.join('\n')}`);
    this.name = 'PolicyValidationError';
    this.file = file;
    this.issues = Object.freeze([...issues]);
  }
}

/**
 * Formats an issue as one line: `file:line:column: rule <id>: <expected>, got <found> [code]`.
 * The `rule <id>: ` part is left out when the issue is outside any rule.
 */
export function formatIssue(issue: PolicyIssue): string {
  const rule = issue.ruleId === undefined ? '' : `rule ${issue.ruleId}: `;

  return `${issue.file}:${issue.line}:${issue.column}: ${rule}${issue.expected}, got ${issue.got} [${issue.code}]`;
}
