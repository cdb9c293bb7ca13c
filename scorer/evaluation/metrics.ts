import type { Action } from '../../policy/decision.ts';

/** One decided record of a labelled access log, as `wardgate replay` and `npm run eval` see it. */
export interface LabelledDecision {
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly user: string;
  readonly action: Action;
  readonly label?: 'benign' | 'misuse';
  /** Shared by the records of one misuse episode. */
  readonly episode?: string;
  /** For a step-up: how long, in milliseconds, a successful step-up elevates the session (the rule's `ttl`). */
  readonly stepUpTtlMs?: number;
}

export interface EvaluationSummary {
  readonly records: number;
  /** Records left out of every other count because their time is not a valid date (see `isValidTime`). */
  readonly invalid_time_records: number;
  readonly episodes: number;
  readonly episode_recall: number;
  readonly benign_flag_rate: number;
  readonly benign_stepups_per_100_user_days: number;
  /** Benign records that were stepped up, blocked or sent to break-glass, per 100 user-days, each counted. */
  readonly benign_interrupted_records_per_100_user_days: number;
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  readonly accuracy: number;
}

/** An episode counts as caught when one of its first this many records is flagged. */
export const EPISODE_CATCH_WINDOW = 5;

/** Largest distance from the epoch that a JavaScript Date can hold, in milliseconds (ECMA-262, Time Values and Time Range). */
const MAX_TIME_MS = 8.64e15;

/** Actions that interrupt a clinician's work; `notify` lets the request through. */
const INTERRUPTING: ReadonlySet<Action> = new Set(['step_up', 'block', 'break_glass']);

/**
 * Scores decisions against their labels. A record is flagged when its action is not
 * `allow`. An episode is caught when one of its first five records (in time order) is
 * flagged. A user-day is a user with at least one benign record on a UTC calendar day.
 * `benign_stepups_per_100_user_days` counts the times a benign user was interrupted (step_up,
 * block or break_glass). As in the live proxy, a completed step-up elevates the session for the
 * rule's ttl. A benign step-up within that time after the user's previous benign step-up is
 * therefore the same interruption and is not counted again. Blocks and break-glass pages always
 * count.
 * `benign_interrupted_records_per_100_user_days` counts every such record. Records without a
 * label are counted in `records` only. Records whose time is NaN, infinite or outside the Date
 * range are counted in `records` and `invalid_time_records` only.
 */
export function summarize(decisions: readonly LabelledDecision[]): EvaluationSummary {
  let truePositive = 0;
  let falsePositive = 0;
  let trueNegative = 0;
  let falseNegative = 0;
  let benignInterruptions = 0;
  let benignInterruptedRecords = 0;
  const elevatedUntil = new Map<string, number>();
  const userDays = new Set<string>();
  const episodes = new Map<string, LabelledDecision[]>();
  // A NaN time would make the sort comparator inconsistent, and toISOString() throws a RangeError for it.
  const valid = decisions.filter((decision) => isValidTime(decision.time));

  for (const decision of valid.sort((a, b) => a.time - b.time)) {
    if (decision.label === undefined) continue;
    const flagged = decision.action !== 'allow';
    if (decision.label === 'misuse') {
      if (flagged) truePositive++;
      else falseNegative++;
      if (decision.episode !== undefined) {
        const records = episodes.get(decision.episode) ?? [];
        records.push(decision);
        episodes.set(decision.episode, records);
      }
    } else {
      if (flagged) falsePositive++;
      else trueNegative++;
      if (INTERRUPTING.has(decision.action)) {
        benignInterruptedRecords++;
        const elevated = decision.action === 'step_up' && decision.time < (elevatedUntil.get(decision.user) ?? Number.NEGATIVE_INFINITY);
        if (!elevated) benignInterruptions++;
        if (decision.action === 'step_up' && !elevated) elevatedUntil.set(decision.user, decision.time + (decision.stepUpTtlMs ?? 0));
      }
      userDays.add(`${decision.user}\u0000${new Date(decision.time).toISOString().slice(0, 10)}`);
    }
  }

  let caught = 0;
  for (const records of episodes.values()) {
    const first = [...records].sort((a, b) => a.time - b.time).slice(0, EPISODE_CATCH_WINDOW);
    if (first.some((record) => record.action !== 'allow')) caught++;
  }

  const precision = ratio(truePositive, truePositive + falsePositive);
  const recall = ratio(truePositive, truePositive + falseNegative);
  return {
    records: decisions.length,
    invalid_time_records: decisions.length - valid.length,
    episodes: episodes.size,
    episode_recall: ratio(caught, episodes.size),
    benign_flag_rate: ratio(falsePositive, falsePositive + trueNegative),
    benign_stepups_per_100_user_days: userDays.size === 0 ? 0 : (100 * benignInterruptions) / userDays.size,
    benign_interrupted_records_per_100_user_days: userDays.size === 0 ? 0 : (100 * benignInterruptedRecords) / userDays.size,
    precision,
    recall,
    f1: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall),
    accuracy: ratio(truePositive + trueNegative, truePositive + trueNegative + falsePositive + falseNegative),
  };
}

/** Returns whether `time` is a number of milliseconds that a Date can hold. */
export function isValidTime(time: number): boolean {
  return Number.isFinite(time) && Math.abs(time) <= MAX_TIME_MS;
}

/** Formats the one-line summary printed by `wardgate replay` and `npm run eval`; `invalid_time_records` appears only when it is not 0. */
export function formatSummary(summary: EvaluationSummary): string {
  const fixed = (value: number) => value.toFixed(4);
  return [
    `records=${summary.records}`,
    ...(summary.invalid_time_records > 0 ? [`invalid_time_records=${summary.invalid_time_records}`] : []),
    `episodes=${summary.episodes}`,
    `episode_recall=${fixed(summary.episode_recall)}`,
    `benign_flag_rate=${fixed(summary.benign_flag_rate)}`,
    `benign_stepups_per_100_user_days=${summary.benign_stepups_per_100_user_days.toFixed(3)}`,
    `precision=${fixed(summary.precision)}`,
    `recall=${fixed(summary.recall)}`,
    `f1=${fixed(summary.f1)}`,
    `accuracy=${fixed(summary.accuracy)}`,
  ].join(' ');
}

function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}
