import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';

import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { DecidingPolicy, ShadowComparator, ShadowDifference } from '../../policy/shadow/shadow-comparator.ts';

/** Runs a candidate policy beside the active one; the pipeline calls it after every policy decision. */
export interface ShadowPort {
  readonly comparator: ShadowComparator;
  /** Returns the candidate policy in force (hot reload swaps it between requests). */
  readonly candidate: () => DecidingPolicy;
  /** Rate limit of the difference log lines; create one with {@link createShadowLogLimit}. */
  readonly logLimit: ShadowLogLimit;
}

/** State of the per-minute limit on logged differences. */
export interface ShadowLogLimit {
  windowStart: number;
  loggedInWindow: number;
  suppressed: number;
}

/** Creates the state of a fresh log limit. */
export function createShadowLogLimit(): ShadowLogLimit {
  return { windowStart: 0, loggedInWindow: 0, suppressed: 0 };
}

/** Most differences logged per minute; the rest are counted and reported with the next logged one. */
const MAX_LOGGED_PER_MINUTE = 60;

/**
 * Decides the request with the candidate policy and records the outcome. When the
 * candidate decides differently, the span gets `wardgate.shadow.action` and
 * `wardgate.shadow.rule`, and the difference is logged (with the trace id the request's
 * logger carries). The active decision is never changed.
 */
export function observeShadow(shadow: ShadowPort, context: DecisionContext, active: Decision, span: Span, log: Logger, now: number): ShadowDifference | undefined {
  const outcome = shadow.comparator.compare(context, active, shadow.candidate());
  if (outcome.error !== undefined) {
    log.warn({ err: outcome.error }, 'shadow policy failed to decide; the active decision is enforced');
    return undefined;
  }

  const difference = outcome.difference;
  if (difference === undefined) return undefined;

  span.setAttributes({ 'wardgate.shadow.action': difference.candidateAction, 'wardgate.shadow.rule': difference.candidateRule });
  const limit = shadow.logLimit;
  if (now - limit.windowStart >= 60_000) {
    limit.windowStart = now;
    limit.loggedInWindow = 0;
  }
  if (limit.loggedInWindow < MAX_LOGGED_PER_MINUTE) {
    limit.loggedInWindow++;
    log.info({ active_action: difference.activeAction, active_rule: difference.activeRule, shadow_action: difference.candidateAction, shadow_rule: difference.candidateRule, ...(limit.suppressed > 0 && { suppressed_since_last: limit.suppressed }) }, 'shadow policy decided differently');
    limit.suppressed = 0;
  } else {
    limit.suppressed++;
  }

  return difference;
}
