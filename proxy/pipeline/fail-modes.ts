import type { Decision } from '../../policy/decision.ts';
import type { Dependency } from '../ports.ts';

/** The decision a closed fail mode makes when `dependency` is unavailable. */
export function failModeDecision(dependency: Dependency, mode: 'closed', risk: number): Decision {
  return {
    action: 'block',
    rule: `fail_mode.${dependency}`,
    reasons: [`${dependency} is unavailable and the route's fail mode for it is ${mode}`],
    risk,
  };
}

/** Tells whether a scoring failure came from the baseline store (Redis) or from the model. */
export function dependencyOfScorerError(error: unknown): Dependency {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.includes('STORE') ? 'redis' : 'scorer';
}
