import type { ScoreInput } from '../types.ts';
import { subjectArguments, subjectKeys } from './keys.ts';
import { PEER_LIMITS, USER_LIMITS, type SubjectLimits } from './limits.ts';
import { buildObservation, type Observation } from './observation.ts';
import { SUBJECT_FIELDS, type BaselineStore, type RawBaseline, type SubjectBaseline } from './store.ts';

interface Entry {
  readonly value: Map<string, number> | Set<string>;
  /** Expiry in request time (milliseconds since the epoch), not wall-clock time. */
  expiresAt: number;
}

/** Observations between two sweeps of expired keys. */
const SWEEP_INTERVAL = 4096;

/**
 * Baselines in process memory, for one instance without Redis (the demo) and for the
 * training simulator. It runs the steps of observe.lua in the same order on the same keys,
 * so it returns the same numbers as {@link RedisBaselineStore}.
 * NOTE: keys expire by request time, while Redis expires them by its own clock, so the two
 * stores differ only when a subject is idle for longer than a key's TTL.
 */
export class MemoryBaselineStore implements BaselineStore {
  readonly #entries = new Map<string, Entry>();
  #observations = 0;

  async observe(input: ScoreInput, patientPseudonyms?: string | readonly string[]): Promise<RawBaseline> {
    return this.observeNow(input, patientPseudonyms);
  }

  /** Synchronous {@link observe}, for the simulator's tight loop. */
  observeNow(input: ScoreInput, patientPseudonyms?: string | readonly string[]): RawBaseline {
    const observation = buildObservation(input, patientPseudonyms);

    this.#observations += 1;
    if (this.#observations % SWEEP_INTERVAL === 0) {
      this.#sweep(input.time);
    }

    return {
      user: this.#observeSubject(observation.userTag, observation, USER_LIMITS, input.time),
      peer: this.#observeSubject(observation.peerTag, observation, PEER_LIMITS, input.time),
    };
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }

  /** Number of live keys, including expired ones not yet swept. */
  get size(): number {
    return this.#entries.size;
  }

  #observeSubject(tag: string, observation: Observation, limits: SubjectLimits, now: number): SubjectBaseline {
    const keys = subjectKeys('', tag, observation);
    const args = subjectArguments(observation, limits);
    const [statsKey, weekKey, networksKey, devicesKey, minuteKey, hourKey, dayKey, hourPatientsKey, dayPatientsKey] =
      keys as [string, string, string, string, string, string, string, string, string];
    const [member, hourOfWeek, network, device, minuteTtl, hourTtl, dayTtl, longTtl] = args as [
      string, string, string, string, string, string, string, string,
    ];

    const stats = this.#hash(statsKey, now);
    const week = this.#hash(weekKey, now);
    const networks = this.#hash(networksKey, now);
    const devices = this.#hash(devicesKey, now);

    const minuteRequests = increment(this.#hash(minuteKey, now), member);
    const hourRequests = increment(this.#hash(hourKey, now), member);
    const dayRequests = increment(this.#hash(dayKey, now), member);

    increment(stats, 'req');
    if (minuteRequests === 1) {
      increment(stats, 'min');
      increment(stats, 'wt');
      increment(week, hourOfWeek);
    }
    if (hourRequests === 1) {
      increment(stats, 'hr');
    }
    if (dayRequests === 1) {
      increment(stats, 'day');
      increment(stats, 'hist');
    }

    const hourPatients = this.#set(hourPatientsKey, now);
    const dayPatients = this.#set(dayPatientsKey, now);
    for (const patient of observation.patients) {
      const pair = `${member}:${patient}`;
      addPatient(hourPatients, stats, 'ph', pair, limits.patientCap);
      addPatient(dayPatients, stats, 'pd', pair, limits.patientCap);
    }

    const networkRequests = remember(networks, network, limits.networkCap);
    const deviceRequests = remember(devices, device, limits.deviceCap);

    if ((stats.get('min') ?? 0) > limits.decayAtMinutes) {
      for (const [field, value] of stats) {
        if (field !== 'hist') {
          stats.set(field, Math.floor(value / 2));
        }
      }
      for (const [bucket, value] of week) {
        week.set(bucket, Math.floor(value / 2));
      }
    }

    this.#expire(minuteKey, now, minuteTtl);
    this.#expire(hourKey, now, hourTtl);
    this.#expire(hourPatientsKey, now, hourTtl);
    this.#expire(dayKey, now, dayTtl);
    this.#expire(dayPatientsKey, now, dayTtl);
    for (const key of [statsKey, weekKey, networksKey, devicesKey]) {
      this.#expire(key, now, longTtl);
    }

    // An empty set is no key in Redis, so drop empty ones here too.
    for (const key of [hourPatientsKey, dayPatientsKey]) {
      if ((this.#entries.get(key)?.value as Set<string> | undefined)?.size === 0) {
        this.#entries.delete(key);
      }
    }

    const values: Record<(typeof SUBJECT_FIELDS)[number], number> = {
      requests: stats.get('req') ?? 0,
      activeMinutes: stats.get('min') ?? 0,
      activeHours: stats.get('hr') ?? 0,
      activeDays: stats.get('day') ?? 0,
      patientHours: stats.get('ph') ?? 0,
      patientDays: stats.get('pd') ?? 0,
      hourOfWeekMinutes: week.get(hourOfWeek) ?? 0,
      hourOfWeekTotal: stats.get('wt') ?? 0,
      historyDays: stats.get('hist') ?? 0,
      networkRequests,
      networkCount: networks.size,
      deviceRequests,
      deviceCount: devices.size,
      minuteRequests,
      hourPatients: hourPatients.size,
      dayPatients: dayPatients.size,
    };

    return Object.freeze(values) as SubjectBaseline;
  }

  #hash(key: string, now: number): Map<string, number> {
    return this.#live(key, now, () => new Map<string, number>()) as Map<string, number>;
  }

  #set(key: string, now: number): Set<string> {
    return this.#live(key, now, () => new Set<string>()) as Set<string>;
  }

  #live(key: string, now: number, create: () => Map<string, number> | Set<string>): Map<string, number> | Set<string> {
    let entry = this.#entries.get(key);
    if (entry !== undefined && entry.expiresAt <= now) {
      this.#entries.delete(key);
      entry = undefined;
    }

    if (entry === undefined) {
      entry = { value: create(), expiresAt: Number.POSITIVE_INFINITY };
      this.#entries.set(key, entry);
    }

    return entry.value;
  }

  #expire(key: string, now: number, ttl: string): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      entry.expiresAt = now + Number(ttl);
    }
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(key);
      }
    }
  }
}

function increment(hash: Map<string, number>, field: string): number {
  const value = (hash.get(field) ?? 0) + 1;
  hash.set(field, value);

  return value;
}

function addPatient(set: Set<string>, stats: Map<string, number>, field: string, pair: string, cap: number): void {
  if (set.has(pair) || set.size >= cap) {
    return;
  }

  set.add(pair);
  increment(stats, field);
}

function remember(hash: Map<string, number>, value: string, cap: number): number {
  const before = hash.get(value) ?? 0;
  if (before > 0 || hash.size < cap) {
    hash.set(value, before + 1);
  }

  return before;
}
