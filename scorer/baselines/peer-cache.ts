import type { Observation } from './observation.ts';
import { PEER_FIELDS, type PeerBaseline } from './store.ts';

/** A peer group's counters, hour-of-week histogram and remembered networks. */
export interface PeerSummary {
  readonly counters: Readonly<Record<(typeof PEER_FIELDS)[number], number>>;
  readonly week: ReadonlyMap<string, number>;
  readonly networks: ReadonlyMap<string, number>;
  /** The hour (hours since the epoch) that `hourMinutes` counts. */
  readonly hour: number;
  /** Active (member, minute) pairs of the group in `hour`. */
  readonly hourMinutes: number;
}

/** Maximum peer groups kept in process; the least recently written group is dropped first. */
export const MAX_CACHED_PEER_GROUPS = 10_000;

const EMPTY: PeerSummary = Object.freeze({
  counters: Object.freeze(Object.fromEntries(PEER_FIELDS.map((field) => [field, 0]))) as PeerSummary['counters'],
  week: new Map<string, number>(),
  networks: new Map<string, number>(),
  hour: -1,
  hourMinutes: 0,
});

/**
 * Peer-group summaries in process memory, so the request path reads peer data without a
 * second Redis call. A group's keys carry the group's own hash tag and so usually live in
 * another Redis Cluster slot than the user's, which one Lua script cannot read. The store
 * refreshes an entry after each request of the group, off the request path.
 * NOTE: each instance reads the summary as of the last update it ran itself, and a group
 * reads as empty after a restart until its first update returns.
 */
export class PeerSummaryCache {
  readonly #summaries = new Map<string, PeerSummary>();

  get(tag: string): PeerSummary {
    return this.#summaries.get(tag) ?? EMPTY;
  }

  set(tag: string, summary: PeerSummary): void {
    this.#summaries.delete(tag);
    this.#summaries.set(tag, summary);
    if (this.#summaries.size > MAX_CACHED_PEER_GROUPS) {
      this.#summaries.delete(this.#summaries.keys().next().value!);
    }
  }

  get size(): number {
    return this.#summaries.size;
  }
}

/** Reads what the features need for one request from a group's summary. */
export function peerView(summary: PeerSummary, observation: Observation): PeerBaseline {
  return Object.freeze({
    ...summary.counters,
    hourOfWeekMinutes: summary.week.get(String(observation.hourOfWeek)) ?? 0,
    networkRequests: summary.networks.get(observation.networkHash) ?? 0,
    hourMinutes: summary.hour === observation.hour ? summary.hourMinutes : 0,
  });
}
