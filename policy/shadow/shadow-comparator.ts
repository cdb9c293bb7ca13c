import type { Action, Decision, DecisionContext } from '../decision.ts';

/** A policy that decides requests: a compiled policy, or the one a watcher has in force at this moment. */
export interface DecidingPolicy {
  readonly hash: string;
  decide(context: DecisionContext): Decision;
}

/** A difference between the active policy's decision and the candidate's for one request. */
export interface ShadowDifference {
  readonly activeAction: Action;
  readonly activeRule: string;
  readonly candidateAction: Action;
  readonly candidateRule: string;
}

/** How often one (active rule, candidate rule) pair differed. */
export interface ShadowPairCount extends ShadowDifference {
  readonly count: number;
}

/** Counters of a {@link ShadowComparator}. */
export interface ShadowCounters {
  /** Requests compared. */
  readonly compared: number;
  /** Requests whose decisions differed in action or rule. */
  readonly differing: number;
  /** Requests whose decisions differed in action; the ones that would change what users see. */
  readonly differingAction: number;
  /** Requests for which the candidate failed to decide (counted, never enforced). */
  readonly candidateErrors: number;
  /** Differences per pair, most frequent first. */
  readonly pairs: readonly ShadowPairCount[];
  /** Whether pairs beyond {@link ShadowComparatorOptions.maxPairs} were left out of `pairs` (still counted in `differing`). */
  readonly pairsTruncated: boolean;
}

/** Options of {@link ShadowComparator}. */
export interface ShadowComparatorOptions {
  /** Maximum number of distinct pairs kept; default 1000. Bounds memory when rule ids churn. */
  readonly maxPairs?: number;
}

/**
 * Compares the decisions of an active and a candidate policy on the same requests and
 * counts the differences per (active rule, candidate rule) pair. Two decisions differ
 * when their action or their rule id differs. The comparator only observes: it returns
 * the active decision's difference from the candidate's and never changes a decision,
 * so the candidate cannot enforce anything. Used on live traffic (shadow mode) and on
 * recorded traffic (replay).
 */
export class ShadowComparator {
  readonly #maxPairs: number;
  readonly #pairs = new Map<string, { difference: ShadowDifference; count: number }>();
  #compared = 0;
  #differing = 0;
  #differingAction = 0;
  #candidateErrors = 0;
  #pairsTruncated = false;

  constructor(options: ShadowComparatorOptions = {}) {
    const maxPairs = options.maxPairs ?? 1000;
    if (!Number.isSafeInteger(maxPairs) || maxPairs < 1) throw new RangeError(`ShadowComparator maxPairs: expected a positive integer, got ${String(maxPairs)}`);
    this.#maxPairs = maxPairs;
  }

  /** Counts one comparison of two decisions for the same request and returns the difference, or `undefined` when they agree. */
  record(active: Decision, candidate: Decision): ShadowDifference | undefined {
    this.#compared++;
    if (active.action === candidate.action && active.rule === candidate.rule) return undefined;

    this.#differing++;
    if (active.action !== candidate.action) this.#differingAction++;
    const difference: ShadowDifference = { activeAction: active.action, activeRule: active.rule, candidateAction: candidate.action, candidateRule: candidate.rule };
    const key = `${active.rule}\u0000${candidate.rule}\u0000${active.action}\u0000${candidate.action}`;
    const entry = this.#pairs.get(key);
    if (entry !== undefined) entry.count++;
    else if (this.#pairs.size < this.#maxPairs) this.#pairs.set(key, { difference, count: 1 });
    else this.#pairsTruncated = true;

    return difference;
  }

  /**
   * Decides `context` with the candidate and compares the result with the active
   * decision. A candidate that throws is counted in `candidateErrors` and reported as
   * `{ error }`. The active decision is enforced either way.
   */
  compare(context: DecisionContext, active: Decision, candidate: DecidingPolicy): { difference?: ShadowDifference; candidate?: Decision; error?: string } {
    let decision: Decision;
    try {
      decision = candidate.decide(context);
    } catch (error) {
      this.#candidateErrors++;
      return { error: error instanceof Error ? error.message : String(error) };
    }

    const difference = this.record(active, decision);
    return difference === undefined ? { candidate: decision } : { candidate: decision, difference };
  }

  /** Returns a snapshot of the counters. */
  counters(): ShadowCounters {
    const pairs = [...this.#pairs.values()]
      .map(({ difference, count }) => ({ ...difference, count }))
      .sort((a, b) => b.count - a.count || a.activeRule.localeCompare(b.activeRule) || a.candidateRule.localeCompare(b.candidateRule));

    return {
      compared: this.#compared,
      differing: this.#differing,
      differingAction: this.#differingAction,
      candidateErrors: this.#candidateErrors,
      pairs,
      pairsTruncated: this.#pairsTruncated,
    };
  }

  /** Sets every counter back to zero, for example after the candidate policy changed. */
  reset(): void {
    this.#pairs.clear();
    this.#compared = 0;
    this.#differing = 0;
    this.#differingAction = 0;
    this.#candidateErrors = 0;
    this.#pairsTruncated = false;
  }
}
