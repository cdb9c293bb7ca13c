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
  /** Device identity (client certificate SAN or device cookie), when known. */
  readonly device?: string;
  /** Seconds since the session signed in; absent for bearer and certificate callers. */
  readonly sessionAgeSeconds?: number;
}

/**
 * What the upstream answered, recorded after the response has gone out so that response-side
 * features (bytes, 403/404 probing) never add latency to the request that produced them.
 */
export interface ResponseObservation {
  readonly user: string;
  readonly groups: readonly string[];
  readonly time: number;
  readonly routeId: string;
  readonly status: number;
  readonly bytes: number;
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
