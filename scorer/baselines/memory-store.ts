import type { ResponseObservation, ScoreInput } from '../types.ts';
import { patientHistoryKey, patientHistoryMember, userKeys, peerKeys, responseKeys } from './keys.ts';
import { PEER_LIMITS, TTL_MS, USER_LIMITS } from './limits.ts';
import { buildObservation, userTagOf, type Observation } from './observation.ts';
import { peerView, type PeerSummary } from './peer-cache.ts';
import type { BaselineStore, ObserveExtras, PeerBaseline, RawBaseline, SubjectBaseline } from './store.ts';

interface Entry {
  readonly value: Map<string, number> | Set<string>;
  /** Expiry in request time (milliseconds since the epoch), not wall-clock time. */
  expiresAt: number;
}

/** Observations between two sweeps of expired keys. */
const SWEEP_INTERVAL = 4096;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** History value of a patient withheld by a block, as in observe.lua. */
const WITHHELD = -1;
/** History value of a patient requested but not yet shown by a response, as in observe.lua. */
const PENDING = -2;

/**
 * Baselines in process memory, for one instance without Redis (the demo), the training
 * simulator and `npm run eval`. It runs the steps of observe.lua, peer.lua and respond.lua in
 * the same order on the same keys, so it returns the same numbers as `RedisBaselineStore`
 * once that store has settled.
 * NOTE: keys expire by request time, while Redis expires them by its own clock, so the two
 * stores differ only when a subject is idle for longer than a key's TTL.
 */
export class MemoryBaselineStore implements BaselineStore {
  readonly #entries = new Map<string, Entry>();
  #observations = 0;

  async observe(input: ScoreInput, extras: ObserveExtras = {}): Promise<RawBaseline> {
    return this.observeNow(input, extras);
  }

  /** Synchronous {@link observe}, for the simulator's tight loop. */
  observeNow(input: ScoreInput, extras: ObserveExtras = {}): RawBaseline {
    const observation = buildObservation(input, extras.patients ?? []);

    this.#observations += 1;
    if (this.#observations % SWEEP_INTERVAL === 0) {
      this.#sweep(input.time);
    }

    const user = this.#observeUser(observation, extras, input.time);
    const peer = this.#peerBefore(observation, input.time);
    this.#updatePeer(observation, input.time, user.unexplainedPatients);

    return { user, peer };
  }

  async observeResponse(observation: ResponseObservation): Promise<void> {
    this.observeResponseNow(observation);
  }

  /** Synchronous {@link observeResponse}. */
  observeResponseNow(response: ResponseObservation): void {
    const observation = buildObservation({ ...response, ip: '0.0.0.0', userAgent: '', method: 'GET', host: '', path: '', sensitivity: 'normal' });
    const [statsKey, hourKey] = responseKeys('', observation.userTag, Math.floor(response.time / HOUR_MS)) as [string, string];
    const stats = this.#hash(statsKey, response.time);
    const hour = this.#hash(hourKey, response.time);

    const responses = increment(hour, 'n');
    increment(hour, 'bytes', response.bytes);
    increment(hour, 'denied', isDenied(response.status) ? 1 : 0);
    increment(stats, 'rb', response.bytes);
    if (responses === 1) {
      increment(stats, 'rh');
    }
    this.#expire(hourKey, response.time, TTL_MS.hour);
    this.#expire(statsKey, response.time, TTL_MS.long);
  }

  /**
   * Runs synchronously although it returns a promise. Like ZADD XX, it marks only patients
   * already in the history and neither creates the history nor changes its expiry.
   */
  async forgetPatients(user: string, pseudonyms: readonly string[]): Promise<void> {
    const historyKey = patientHistoryKey('', userTagOf(user));
    const history = this.#entries.get(historyKey)?.value as Map<string, number> | undefined;
    if (history === undefined) {
      return;
    }

    for (const pseudonym of pseudonyms) {
      const member = historyMember(pseudonym);
      if (history.has(member)) history.set(member, WITHHELD);
    }
  }

  /** Runs synchronously although it returns a promise; see {@link showPatientsNow}. */
  async showPatients(user: string, pseudonyms: readonly string[], time: number): Promise<void> {
    this.showPatientsNow(user, pseudonyms, time);
  }

  /**
   * Synchronous {@link showPatients}, the steps of show.lua: pending patients become known
   * with the day of `time`; withheld and absent patients stay as they are.
   */
  showPatientsNow(user: string, pseudonyms: readonly string[], time: number): void {
    const history = this.#entries.get(patientHistoryKey('', userTagOf(user)))?.value as Map<string, number> | undefined;
    if (history === undefined) {
      return;
    }

    const day = Math.floor(time / DAY_MS);
    for (const pseudonym of pseudonyms) {
      const member = historyMember(pseudonym);
      if (history.get(member) === PENDING) history.set(member, day);
    }
  }

  async settle(): Promise<void> {}

  async close(): Promise<void> {
    this.#entries.clear();
  }

  /** Number of live keys, including expired ones not yet swept. */
  get size(): number {
    return this.#entries.size;
  }

  #observeUser(observation: Observation, extras: ObserveExtras, now: number): SubjectBaseline {
    const limits = USER_LIMITS;
    const [statsKey, weekKey, networksKey, devicesKey, minuteKey, hourKey, dayKey, hourPatientsKey, dayPatientsKey, responseKey, routesKey, historyKey] =
      userKeys('', observation) as [string, string, string, string, string, string, string, string, string, string, string, string];
    const hourOfWeek = String(observation.hourOfWeek);

    const stats = this.#hash(statsKey, now);
    const week = this.#hash(weekKey, now);
    const networks = this.#hash(networksKey, now);
    const devices = this.#hash(devicesKey, now);
    const minute = this.#hash(minuteKey, now);
    const hour = this.#hash(hourKey, now);
    const day = this.#hash(dayKey, now);

    const minuteRequests = increment(minute, 'n');
    const hourRequests = increment(hour, 'n');
    const hourMinutes = minuteRequests === 1 ? increment(hour, 'm') : (hour.get('m') ?? 0);
    const dayRequests = increment(day, 'n');
    const exportsDay = increment(day, 'x', extras.bulkExport === true ? 1 : 0);
    const outsideCareHour = increment(hour, 'o', extras.outsideCare ?? 0);
    const flaggedHour = increment(hour, 'f', extras.flagged ?? 0);

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
    // Whether this hour already counted each patient, for withheld patients below.
    const inHour = observation.patients.map((patient) => hourPatients.has(patient));
    for (const patient of observation.patients) {
      addPatient(hourPatients, stats, 'ph', patient, limits.patientCap);
      addPatient(dayPatients, stats, 'pd', patient, limits.patientCap);
    }

    const history = this.#hash(historyKey, now);
    if (dayRequests === 1) {
      for (const [member, lastDay] of history) {
        if (lastDay <= observation.day - limits.historyWindowDays) history.delete(member);
      }
    }
    // A patient first requested is pending until a response shows them (showPatients), and -1
    // marks a patient withheld by a block (forgetPatients). Either is new, and unexplained unless
    // care or the census explains them, counted once per hour in the hour's counters only.
    let newPatients = 0;
    let unexplained = 0;
    let firstNew = 0;
    let firstUnexplained = 0;
    let hourNew = 0;
    let hourUnexplained = 0;
    for (const [index, patient] of observation.patients.entries()) {
      const member = historyMember(patient);
      const unexplainedHere = extras.unexplained?.[index] === true ? 1 : 0;
      const seen = history.get(member);
      if (seen !== undefined && seen >= 0) {
        history.set(member, observation.day);
      } else if (seen !== undefined) {
        newPatients += 1;
        unexplained += unexplainedHere;
        if (!inHour[index]) {
          hourNew += 1;
          hourUnexplained += unexplainedHere;
        }
      } else {
        newPatients += 1;
        unexplained += unexplainedHere;
        firstNew += 1;
        firstUnexplained += unexplainedHere;
        if (history.size < limits.historyCap) history.set(member, PENDING);
      }
    }
    let patientAccessesHour = hour.get('pa') ?? 0;
    if (observation.patients.length > 0) {
      increment(stats, 'pa', observation.patients.length);
      increment(stats, 'na', extras.notAdmitted ?? 0);
      patientAccessesHour = increment(hour, 'pa', observation.patients.length);
    }
    const newPatientsHour = increment(hour, 'np', firstNew + hourNew);
    if (firstNew > 0) {
      increment(stats, 'np', firstNew);
    }
    const unexplainedHour = increment(hour, 'ux', firstUnexplained + hourUnexplained);
    if (firstUnexplained > 0) {
      increment(stats, 'ux', firstUnexplained);
    }

    const networkRequests = remember(networks, observation.networkHash, limits.networkCap);
    const deviceRequests = remember(devices, observation.deviceHash, limits.deviceCap);
    let routePatientRequests = 0;
    let routePatientTotal = 0;
    if (observation.patients.length > 0) {
      const routes = this.#hash(routesKey, now);
      routePatientTotal = routes.get('_total') ?? 0;
      increment(routes, '_total');
      routePatientRequests = remember(routes, observation.routeHash, limits.routeCap);
    }

    if ((stats.get('min') ?? 0) > limits.decayAtMinutes) {
      halve(stats, 'hist');
      halve(week);
    }

    this.#expire(minuteKey, now, TTL_MS.minute);
    this.#expire(hourKey, now, TTL_MS.hour);
    this.#expire(hourPatientsKey, now, TTL_MS.hour);
    this.#expire(dayKey, now, TTL_MS.day);
    this.#expire(dayPatientsKey, now, TTL_MS.day);
    for (const key of [statsKey, weekKey, networksKey, devicesKey, routesKey, historyKey]) {
      this.#expire(key, now, TTL_MS.long);
    }
    this.#dropEmptySets([hourPatientsKey, dayPatientsKey, historyKey]);

    const responses = this.#peek(responseKey, now) as Map<string, number> | undefined;
    const values: SubjectBaseline = {
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
      exportsDay,
      outsideCareHour,
      flaggedHour,
      hourMinutes,
      responsesHour: responses?.get('n') ?? 0,
      deniedHour: responses?.get('denied') ?? 0,
      bytesHour: responses?.get('bytes') ?? 0,
      responseBytes: stats.get('rb') ?? 0,
      responseHours: stats.get('rh') ?? 0,
      routePatientRequests,
      routePatientTotal,
      newPatients,
      newPatientsHour,
      newPatientsTotal: stats.get('np') ?? 0,
      patientAccesses: stats.get('pa') ?? 0,
      notAdmittedAccesses: stats.get('na') ?? 0,
      unexplainedPatients: unexplained,
      unexplainedHour,
      unexplainedTotal: stats.get('ux') ?? 0,
      patientAccessesHour,
    };

    return Object.freeze(values);
  }

  #peerBefore(observation: Observation, now: number): PeerBaseline {
    const [statsKey, weekKey, networksKey, , hourKey] = peerKeys('', observation) as [string, string, string, string, string];
    const stats = (this.#peek(statsKey, now) as Map<string, number> | undefined) ?? new Map<string, number>();
    const summary: PeerSummary = {
      counters: {
        requests: stats.get('req') ?? 0,
        activeMinutes: stats.get('min') ?? 0,
        activeHours: stats.get('hr') ?? 0,
        activeDays: stats.get('day') ?? 0,
        patientHours: stats.get('ph') ?? 0,
        patientDays: stats.get('pd') ?? 0,
        hourOfWeekTotal: stats.get('wt') ?? 0,
        patientAccesses: stats.get('pa') ?? 0,
        unexplained: stats.get('ux') ?? 0,
      },
      week: (this.#peek(weekKey, now) as Map<string, number> | undefined) ?? new Map(),
      networks: (this.#peek(networksKey, now) as Map<string, number> | undefined) ?? new Map(),
      hour: observation.hour,
      hourMinutes: (this.#peek(hourKey, now) as Map<string, number> | undefined)?.get('m') ?? 0,
    };

    return peerView(summary, observation);
  }

  #updatePeer(observation: Observation, now: number, unexplained: number): void {
    const limits = PEER_LIMITS;
    const [statsKey, weekKey, networksKey, minuteKey, hourKey, dayKey, hourPatientsKey, dayPatientsKey] = peerKeys('', observation) as [
      string, string, string, string, string, string, string, string,
    ];
    const hourOfWeek = String(observation.hourOfWeek);
    const stats = this.#hash(statsKey, now);
    const week = this.#hash(weekKey, now);
    const networks = this.#hash(networksKey, now);

    const minuteRequests = increment(this.#hash(minuteKey, now), observation.member);
    const hourRequests = increment(this.#hash(hourKey, now), observation.member);
    const dayRequests = increment(this.#hash(dayKey, now), observation.member);

    increment(stats, 'req');
    if (minuteRequests === 1) {
      increment(this.#hash(hourKey, now), 'm');
      increment(stats, 'min');
      increment(stats, 'wt');
      increment(week, hourOfWeek);
    }
    if (hourRequests === 1) {
      increment(stats, 'hr');
    }
    if (dayRequests === 1) {
      increment(stats, 'day');
    }

    const hourPatients = this.#set(hourPatientsKey, now);
    const dayPatients = this.#set(dayPatientsKey, now);
    for (const patient of observation.patients) {
      const pair = `${observation.member}:${patient}`;
      addPatient(hourPatients, stats, 'ph', pair, limits.patientCap);
      addPatient(dayPatients, stats, 'pd', pair, limits.patientCap);
    }

    if (observation.patients.length > 0) {
      increment(stats, 'pa', observation.patients.length);
      increment(stats, 'ux', unexplained);
    }

    remember(networks, observation.networkHash, limits.networkCap);

    if ((stats.get('min') ?? 0) > limits.decayAtMinutes) {
      halve(stats);
      halve(week);
    }

    this.#expire(minuteKey, now, TTL_MS.minute);
    this.#expire(hourKey, now, TTL_MS.hour);
    this.#expire(hourPatientsKey, now, TTL_MS.hour);
    this.#expire(dayKey, now, TTL_MS.day);
    this.#expire(dayPatientsKey, now, TTL_MS.day);
    for (const key of [statsKey, weekKey, networksKey]) {
      this.#expire(key, now, TTL_MS.long);
    }
    this.#dropEmptySets([hourPatientsKey, dayPatientsKey]);
  }

  // An empty set or sorted set is no key in Redis, so drop empty ones here too.
  #dropEmptySets(keys: readonly string[]): void {
    for (const key of keys) {
      if (this.#entries.get(key)?.value.size === 0) {
        this.#entries.delete(key);
      }
    }
  }

  #hash(key: string, now: number): Map<string, number> {
    return this.#live(key, now, () => new Map<string, number>()) as Map<string, number>;
  }

  #set(key: string, now: number): Set<string> {
    return this.#live(key, now, () => new Set<string>()) as Set<string>;
  }

  #peek(key: string, now: number): Map<string, number> | Set<string> | undefined {
    const entry = this.#entries.get(key);

    return entry === undefined || entry.expiresAt <= now ? undefined : entry.value;
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

  #expire(key: string, now: number, ttl: number): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      entry.expiresAt = now + ttl;
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

/** Returns whether a response status counts as denied or probing (403 Forbidden, 404 Not Found). */
export function isDenied(status: number): boolean {
  return status === 403 || status === 404;
}

// Latin-1 maps each of the member's bytes to one character, so two pseudonyms share a member
// here exactly when they share one in observe.lua.
function historyMember(pseudonym: string): string {
  return patientHistoryMember(pseudonym).toString('latin1');
}

function increment(hash: Map<string, number>, field: string, by = 1): number {
  const value = (hash.get(field) ?? 0) + by;
  hash.set(field, value);

  return value;
}

function halve(hash: Map<string, number>, keep?: string): void {
  for (const [field, value] of hash) {
    if (field !== keep) {
      hash.set(field, Math.floor(value / 2));
    }
  }
}

function addPatient(set: Set<string>, stats: Map<string, number>, field: string, member: string, cap: number): void {
  if (set.has(member) || set.size >= cap) {
    return;
  }

  set.add(member);
  increment(stats, field);
}

function remember(hash: Map<string, number>, value: string, cap: number): number {
  const before = hash.get(value) ?? 0;
  if (before > 0 || hash.size < cap) {
    hash.set(value, before + 1);
  }

  return before;
}
