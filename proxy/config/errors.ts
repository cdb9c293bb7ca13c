/** One problem found in a configuration file, with its position. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted option path, e.g. `routes[0].upstream`. */
  readonly option: string;
  readonly message: string;
}

/** Raised at start-up when the configuration file is unusable; lists every issue found. */
export class ConfigError extends Error {
  readonly code = 'WG_CONFIG_INVALID';
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatConfigIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatConfigIssue(issue: ConfigIssue): string {
  return `${issue.file}:${issue.line}:${issue.column}: ${issue.option}: ${issue.message}`;
}
