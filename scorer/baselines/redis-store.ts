import { readFileSync } from 'node:fs';

import type { Redis } from 'ioredis';

import { ScorerError, isScorerError } from '../errors.ts';
import type { ScoreInput } from '../types.ts';
import { subjectArguments, subjectKeys } from './keys.ts';
import { PEER_LIMITS, USER_LIMITS } from './limits.ts';
import { buildObservation } from './observation.ts';
import { SUBJECT_FIELDS, type BaselineStore, type RawBaseline, type SubjectBaseline } from './store.ts';

const OBSERVE_SCRIPT = readFileSync(new URL('./observe.lua', import.meta.url), 'utf8');
const COMMAND = 'wardgateObserveBaseline';
const KEY_COUNT = 9;

type ObserveCommand = (keysAndArguments: string[]) => unknown;

export interface RedisBaselineStoreOptions {
  /** Key prefix, for example `wg:bl:`; every key of the store starts with it. */
  readonly prefix: string;
}

/**
 * Baselines in Redis. One pipeline of two EVALSHA calls (user, then peer group) reads and
 * updates both baselines in one round trip. Each call touches only keys of one hash tag.
 * NOTE: in Redis Cluster the two calls usually go to two nodes, so that is two round trips
 * in parallel, not one.
 */
export class RedisBaselineStore implements BaselineStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, options: RedisBaselineStoreOptions) {
    if (typeof options.prefix !== 'string' || options.prefix === '' || /[{}\s]/.test(options.prefix)) {
      throw new ScorerError(
        'WG_SCORER_INVALID_OPTION',
        `Invalid option prefix: expected a non-empty key prefix without braces or spaces, received ${JSON.stringify(options.prefix)}.`,
        { detail: { option: 'prefix' } },
      );
    }

    this.#redis = redis;
    this.#prefix = options.prefix;
    if (!(COMMAND in redis)) {
      redis.defineCommand(COMMAND, { numberOfKeys: KEY_COUNT, lua: OBSERVE_SCRIPT });
    }
  }

  async observe(input: ScoreInput, patientPseudonyms?: string | readonly string[]): Promise<RawBaseline> {
    const observation = buildObservation(input, patientPseudonyms);
    const userCall = [
      ...subjectKeys(this.#prefix, observation.userTag, observation),
      ...subjectArguments(observation, USER_LIMITS),
    ];
    const peerCall = [
      ...subjectKeys(this.#prefix, observation.peerTag, observation),
      ...subjectArguments(observation, PEER_LIMITS),
    ];

    let results: [Error | null, unknown][] | null;
    try {
      const pipeline = this.#redis.pipeline() as unknown as Record<string, ObserveCommand> & {
        exec(): Promise<[Error | null, unknown][] | null>;
      };
      pipeline[COMMAND]!(userCall);
      pipeline[COMMAND]!(peerCall);
      results = await pipeline.exec();
    } catch (error) {
      throw unavailable(error);
    }

    const failed = results?.find(([error]) => error !== null);
    if (results === null || failed !== undefined) {
      throw unavailable(failed?.[0] ?? new Error('the pipeline was discarded'));
    }

    return {
      user: toSubjectBaseline(results[0]![1], 'user'),
      peer: toSubjectBaseline(results[1]![1], 'peer group'),
    };
  }

  /** The Redis client belongs to the caller, so closing the store leaves it open. */
  async close(): Promise<void> {}
}

function unavailable(cause: unknown): ScorerError {
  if (isScorerError(cause)) {
    return cause;
  }

  return new ScorerError(
    'WG_SCORER_STORE_UNAVAILABLE',
    `Baseline store failed: ${(cause as Error)?.message ?? String(cause)}. The route's fail mode applies; check Redis.`,
    { cause },
  );
}

function toSubjectBaseline(reply: unknown, subject: string): SubjectBaseline {
  const valid =
    Array.isArray(reply) &&
    reply.length === SUBJECT_FIELDS.length &&
    reply.every((value) => Number.isSafeInteger(value) && value >= 0);
  if (!valid) {
    throw new ScorerError(
      'WG_SCORER_STORE_REPLY_INVALID',
      `Invalid baseline reply for the ${subject}: expected ${SUBJECT_FIELDS.length} non-negative integers, ` +
        `received ${JSON.stringify(reply)?.slice(0, 120)}. Check that the Redis keys under the prefix belong to Wardgate.`,
    );
  }

  const entries = SUBJECT_FIELDS.map((field, index) => [field, (reply as number[])[index]]);

  return Object.freeze(Object.fromEntries(entries)) as SubjectBaseline;
}
