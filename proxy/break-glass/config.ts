import { isScalar, type Node } from 'yaml';
import { describe, type OptionReader } from '../config/reader.ts';

/** `review:` in the configuration file. */
export interface ReviewConfig {
  /** Decisions with a risk at or above this go to the review queue, whatever their action. */
  readonly threshold: number;
  /** Approximate maximum length of the review stream (XADD MAXLEN ~). */
  readonly stream_max_length: number;
  /** Seconds a benign label keeps a user's pattern from being flagged again. */
  readonly benign_ttl: number;
  /** Entries per user and UTC hour after which escalations below `threshold` are not queued. */
  readonly max_entries_per_user_hour: number;
}

/** `break_glass:` in the configuration file. */
export interface BreakGlassConfig {
  readonly justification_min_length: number;
  readonly justification_max_length: number;
  /** Seconds a shown break-glass form (or notice) stays valid. */
  readonly offer_ttl: number;
}

/** `notify:` in the configuration file. */
export interface NotifyConfig {
  /** Text shown on the notice interstitial and sent in the `Wardgate-Notice` header. */
  readonly message: string;
  /** Seconds an acknowledged notice stays acknowledged for that session, route and patient. */
  readonly acknowledgement_ttl: number;
}

export interface OversightConfig {
  readonly review: ReviewConfig;
  readonly break_glass: BreakGlassConfig;
  readonly notify: NotifyConfig;
}

export const DEFAULT_NOTICE = 'Access to this record is logged and may be reviewed by the privacy office. Open records only when you are involved in the patient\'s care.';

export const DEFAULT_OVERSIGHT_CONFIG: OversightConfig = Object.freeze({
  review: Object.freeze({ threshold: 0.7, stream_max_length: 100_000, benign_ttl: 30 * 86_400, max_entries_per_user_hour: 500 }),
  break_glass: Object.freeze({ justification_min_length: 20, justification_max_length: 1000, offer_ttl: 900 }),
  notify: Object.freeze({ message: DEFAULT_NOTICE, acknowledgement_ttl: 12 * 3600 }),
});

/** Reads the `review`, `break_glass` and `notify` sections, each optional, reporting bad values through `reader`. */
export function readOversightConfig(reader: OptionReader, top: Map<string, Node>): OversightConfig {
  const defaults = DEFAULT_OVERSIGHT_CONFIG;
  const review = optionalMap(reader, top.get('review'), 'review', ['threshold', 'stream_max_length', 'benign_ttl', 'max_entries_per_user_hour']);
  const breakGlass = optionalMap(reader, top.get('break_glass'), 'break_glass', ['justification_min_length', 'justification_max_length', 'offer_ttl']);
  const notify = optionalMap(reader, top.get('notify'), 'notify', ['message', 'acknowledgement_ttl']);

  const minLength = reader.integer(breakGlass.get('justification_min_length'), 'break_glass.justification_min_length', 1, 1000, defaults.break_glass.justification_min_length);
  const maxLength = reader.integer(breakGlass.get('justification_max_length'), 'break_glass.justification_max_length', 10, 4000, defaults.break_glass.justification_max_length);
  if (maxLength < minLength) {
    reader.report(breakGlass.get('justification_max_length') ?? null, 'break_glass.justification_max_length', `must be at least justification_min_length (${minLength}), got ${maxLength}`);
  }
  const message = reader.string(notify.get('message'), 'notify.message', defaults.notify.message);
  if (!/^[\x20-\x7e]+$/.test(message)) {
    reader.report(notify.get('message') ?? null, 'notify.message', 'must be printable ASCII because it is also sent as an HTTP header');
  }

  return {
    review: {
      threshold: readFraction(reader, review.get('threshold'), 'review.threshold', defaults.review.threshold),
      stream_max_length: reader.integer(review.get('stream_max_length'), 'review.stream_max_length', 100, 10_000_000, defaults.review.stream_max_length),
      benign_ttl: reader.integer(review.get('benign_ttl'), 'review.benign_ttl', 60, 366 * 86_400, defaults.review.benign_ttl),
      max_entries_per_user_hour: reader.integer(review.get('max_entries_per_user_hour'), 'review.max_entries_per_user_hour', 10, 1_000_000, defaults.review.max_entries_per_user_hour),
    },
    break_glass: {
      justification_min_length: minLength,
      justification_max_length: maxLength,
      offer_ttl: reader.integer(breakGlass.get('offer_ttl'), 'break_glass.offer_ttl', 60, 3600, defaults.break_glass.offer_ttl),
    },
    notify: {
      message,
      acknowledgement_ttl: reader.integer(notify.get('acknowledgement_ttl'), 'notify.acknowledgement_ttl', 60, 7 * 86_400, defaults.notify.acknowledgement_ttl),
    },
  };
}

function optionalMap(reader: OptionReader, node: Node | undefined, option: string, allowed: readonly string[]): Map<string, Node> {
  return node === undefined ? new Map() : reader.map(node, option, allowed) ?? new Map();
}

function readFraction(reader: OptionReader, node: Node | undefined, option: string, fallback: number): number {
  if (node === undefined) return fallback;
  const value = isScalar(node) ? node.value : undefined;
  if (typeof value === 'number' && value >= 0 && value <= 1) return value;
  reader.report(node, option, `expected a number from 0 to 1, got ${describe(node)}`);
  return fallback;
}
