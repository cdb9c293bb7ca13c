/** One request as the scorer sees it. The time is passed in, never read from the clock. */
export interface ScoreInput {
  readonly user: string;
  readonly groups: readonly string[];
  /** Request time in milliseconds since the epoch. */
  readonly time: number;
  readonly ip: string;
  readonly userAgent: string;
  readonly method: string;
  readonly host: string;
  /** Normalized path, query string included. */
  readonly path: string;
  readonly routeId: string;
  readonly sensitivity: 'low' | 'normal' | 'high';
}

/** One feature's share in a risk score, for explanations in spans and audit records. */
export interface Contribution {
  readonly name: string;
  readonly value: number;
  readonly contribution: number;
}

export interface ScoreResult {
  /** Risk in [0, 1]. */
  readonly risk: number;
  readonly features: Readonly<Record<string, number>>;
  /** The three features that contributed most, highest first. */
  readonly top: readonly Contribution[];
  readonly modelVersion: string;
}
