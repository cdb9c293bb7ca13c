import { readFileSync } from 'node:fs';

import type { RedisClient } from './redis-client.ts';

import { ScorerError, isScorerError } from '../errors.ts';
import type { ResponseObservation, ScoreInput } from '../types.ts';
import { patientHistoryKey, patientHistoryMember, peerArguments, peerKeys, responseKeys, userArguments, userKeys } from './keys.ts';
import { PEER_LIMITS, TTL_MS, USER_LIMITS } from './limits.ts';
import { isDenied } from './memory-store.ts';
import { buildObservation, userTagOf, type Observation } from './observation.ts';
import { PeerSummaryCache, peerView, type PeerSummary } from './peer-cache.ts';
import { PEER_FIELDS, SUBJECT_FIELDS, type BaselineStore, type ObserveExtras, type RawBaseline, type SubjectBaseline } from './store.ts';

const SCRIPTS = Object.freeze({
  observe: { name: 'wardgateObserveUser', keys: 12, lua: readFileSync(new URL('./observe.lua', import.meta.url), 'utf8') },
  peer: { name: 'wardgateObservePeer', keys: 8, lua: readFileSync(new URL('./peer.lua', import.meta.url), 'utf8') },
  respond: { name: 'wardgateObserveResponse', keys: 2, lua: readFileSync(new URL('./respond.lua', import.meta.url), 'utf8') },
  show: { name: 'wardgateShowPatients', keys: 1, lua: readFileSync(new URL('./show.lua', import.meta.url), 'utf8') },
});
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

type ScriptCommand = (keysAndArguments: string[]) => Promise<unknown>;

export interface RedisBaselineStoreOptions {
  /** Key prefix, for example `wg:bl:`; every key of the store starts with it. */
  readonly prefix: string;
  /** Called with errors of updates that run off the request path (peer and response updates). */
  readonly onBackgroundError?: (error: ScorerError) => void;
}

/**
 * Baselines in Redis. On the request path, one EVALSHA of observe.lua reads and updates all of
 * the user's keys, which share the user's hash tag and so one Redis Cluster slot. The peer
 * group's keys carry the group's hash tag, so peer.lua updates them after the request was
 * scored and returns the group's summary into a {@link PeerSummaryCache} that the next
 * request reads in process. Responses are recorded by a separate call of respond.lua.
 */
export class RedisBaselineStore implements BaselineStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #peers = new PeerSummaryCache();
  readonly #pending = new Set<Promise<void>>();
  readonly #onBackgroundError: (error: ScorerError) => void;

  constructor(redis: RedisClient, options: RedisBaselineStoreOptions) {
    if (typeof options.prefix !== 'string' || options.prefix === '' || /[{}\s]/.test(options.prefix)) {
      throw new ScorerError(
        'WG_SCORER_INVALID_OPTION',
        `Invalid option prefix: expected a non-empty key prefix without braces or spaces, received ${JSON.stringify(options.prefix)}.`,
        { detail: { option: 'prefix' } },
      );
    }

    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#onBackgroundError = options.onBackgroundError ?? (() => {});
    for (const script of Object.values(SCRIPTS)) {
      if (!(script.name in redis)) {
        redis.defineCommand(script.name, { numberOfKeys: script.keys, lua: script.lua });
      }
    }
  }

  async observe(input: ScoreInput, extras: ObserveExtras = {}): Promise<RawBaseline> {
    const observation = buildObservation(input, extras.patients ?? []);
    const peer = peerView(this.#peers.get(observation.peerTag), observation);

    let reply: unknown;
    try {
      reply = await this.#command(SCRIPTS.observe.name)([
        ...userKeys(this.#prefix, observation),
        ...userArguments(observation, USER_LIMITS, extras),
      ]);
    } catch (error) {
      throw unavailable(error);
    }

    const user = toSubjectBaseline(reply);
    this.#background(this.#updatePeer(observation, user.unexplainedPatients));

    return { user, peer };
  }

  async observeResponse(response: ResponseObservation): Promise<void> {
    const observation = buildObservation({ ...response, ip: '0.0.0.0', userAgent: '', method: 'GET', host: '', path: '', sensitivity: 'normal' });

    try {
      await this.#command(SCRIPTS.respond.name)([
        ...responseKeys(this.#prefix, observation.userTag, Math.floor(response.time / HOUR_MS)),
        String(Math.max(0, Math.trunc(response.bytes))),
        isDenied(response.status) ? '1' : '0',
        String(TTL_MS.hour),
        String(TTL_MS.long),
      ]);
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Marks the patients withheld with one ZADD XX on the history key, which carries the user's
   * hash tag like the keys of observe.lua. Redis runs the commands of one connection in the
   * order sent, so a request observed after this call started finds the mark. {@link settle}
   * also waits for the ZADD.
   */
  async forgetPatients(user: string, pseudonyms: readonly string[]): Promise<void> {
    if (pseudonyms.length === 0) {
      return;
    }

    // XX: only members already in the history; -1 is the withheld mark that observe.lua reads.
    const members = pseudonyms.flatMap((pseudonym) => [-1, patientHistoryMember(pseudonym)]);
    await this.#tracked(this.#redis.zadd(patientHistoryKey(this.#prefix, userTagOf(user)), 'XX', ...members));
  }

  /**
   * Turns the user's pending patients into known ones with one call of show.lua on the history
   * key. Like {@link forgetPatients}, {@link settle} waits for it.
   */
  async showPatients(user: string, pseudonyms: readonly string[], time: number): Promise<void> {
    if (pseudonyms.length === 0) {
      return;
    }

    await this.#tracked(this.#command(SCRIPTS.show.name)([patientHistoryKey(this.#prefix, userTagOf(user)), String(Math.floor(time / DAY_MS)), ...pseudonyms]));
  }

  /** Waits for a history update that {@link settle} also waits for, and turns its failure into store unavailable. */
  async #tracked(update: Promise<unknown>): Promise<void> {
    // The caller receives the error, so the copy that settle() waits for drops it.
    const tracked: Promise<void> = update.then(ignore, ignore).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);

    try {
      await update;
    } catch (error) {
      throw unavailable(error);
    }
  }

  async settle(): Promise<void> {
    while (this.#pending.size > 0) {
      await Promise.all([...this.#pending]);
    }
  }

  /** The Redis client belongs to the caller, so closing the store leaves it open. */
  async close(): Promise<void> {
    await this.settle();
  }

  async #updatePeer(observation: Observation, unexplained: number): Promise<void> {
    const reply = await this.#command(SCRIPTS.peer.name)([
      ...peerKeys(this.#prefix, observation),
      ...peerArguments(observation, PEER_LIMITS, unexplained),
    ]);

    this.#peers.set(observation.peerTag, toPeerSummary(reply, observation.hour));
  }

  #background(task: Promise<void>): void {
    const tracked = task.catch((error: unknown) => this.#onBackgroundError(unavailable(error))).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  #command(name: string): ScriptCommand {
    const command = (this.#redis as unknown as Record<string, ScriptCommand>)[name]!;

    return command.bind(this.#redis);
  }
}

function ignore(): void {}

function unavailable(cause: unknown): ScorerError {
  if (isScorerError(cause)) {
    return cause;
  }

  return new ScorerError(
    'WG_SCORER_STORE_UNAVAILABLE',
    `Baseline store failed: ${String((cause as Error)?.message ?? cause).replace(/\.+$/, '')}. The route's fail mode applies; check Redis.`,
    { cause },
  );
}

function toSubjectBaseline(reply: unknown): SubjectBaseline {
  const valid =
    Array.isArray(reply) &&
    reply.length === SUBJECT_FIELDS.length &&
    reply.every((value) => Number.isSafeInteger(value) && value >= 0);
  if (!valid) {
    throw invalidReply('user', `${SUBJECT_FIELDS.length} non-negative integers`, reply);
  }

  const entries = SUBJECT_FIELDS.map((field, index) => [field, (reply as number[])[index]]);

  return Object.freeze(Object.fromEntries(entries)) as SubjectBaseline;
}

function toPeerSummary(reply: unknown, hour: number): PeerSummary {
  const [counters, week, networks, hourMinutes] = Array.isArray(reply) ? (reply as unknown[]) : [];
  const valid =
    Array.isArray(counters) &&
    counters.length === PEER_FIELDS.length &&
    counters.every((value) => Number.isSafeInteger(value) && value >= 0) &&
    Array.isArray(week) &&
    Array.isArray(networks) &&
    Number.isSafeInteger(hourMinutes);
  if (!valid) {
    throw invalidReply('peer group', `${PEER_FIELDS.length} counters, two field lists and an integer`, reply);
  }

  return Object.freeze({
    counters: Object.freeze(Object.fromEntries(PEER_FIELDS.map((field, index) => [field, counters[index] as number]))) as PeerSummary['counters'],
    week: pairs(week),
    networks: pairs(networks),
    hour,
    hourMinutes: hourMinutes as number,
  });
}

function pairs(flat: unknown[]): Map<string, number> {
  const map = new Map<string, number>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    map.set(String(flat[i]), Number(flat[i + 1]));
  }

  return map;
}

function invalidReply(subject: string, expected: string, reply: unknown): ScorerError {
  return new ScorerError(
    'WG_SCORER_STORE_REPLY_INVALID',
    `Invalid baseline reply for the ${subject}: expected ${expected}, ` +
      `received ${JSON.stringify(reply)?.slice(0, 120)}. Check that the Redis keys under the prefix belong to Wardgate.`,
  );
}
