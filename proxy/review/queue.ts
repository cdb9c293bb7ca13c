import { createHash } from 'node:crypto';
import type { RedisClient } from '../../scorer/index.ts';
import type { Logger } from 'pino';
import { ReviewError } from './errors.ts';
import type { ReviewEntry } from './entry.ts';

/** Consumer group that analysts read the review stream through. */
export const REVIEW_GROUP = 'analysts';

export type ReviewLabel = 'benign' | 'misuse';

/** An analyst's verdict on one entry, stored beside the stream and in the audit trail. */
export interface LabelRecord {
  readonly entry_id: string;
  readonly label: ReviewLabel;
  readonly note: string;
  readonly analyst: string;
  /** Milliseconds since the epoch. */
  readonly labelled_at: number;
}

export interface StoredReviewEntry {
  readonly id: string;
  readonly entry: ReviewEntry;
  readonly label?: LabelRecord;
}

export interface ReviewQueueOptions {
  /** Redis key prefix, e.g. `wg:`; the stream is `<prefix>review`. */
  readonly prefix: string;
  /** Approximate maximum stream length (XADD MAXLEN ~). */
  readonly maxLength: number;
  /**
   * Entries per user and UTC hour after which `enqueue` drops low-risk decision entries
   * (default: no limit). The first decision entry at or past the limit is still written, with
   * `user_hour_limit`. Break-glass claims, and entries enqueued with `exemptFromUserLimit`, are
   * never dropped but count towards the limit.
   */
  readonly maxEntriesPerUserHour?: number;
  readonly logger?: Logger;
}

/** How long a label record is kept, in seconds (one year). */
const LABEL_TTL_S = 365 * 86_400;
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;
const DELIVER_BATCH = 500;
const HOUR_MS = 3_600_000;
/** Seconds a per-user hourly counter lives: its hour and the next, for clocks that differ between instances. */
const USER_HOUR_COUNTER_TTL_S = 2 * 3600;
/** Deletes KEYS[1] when it contains ARGV[1] or is gone (returns 1), and keeps any other value (returns 0). */
const REMOVE_LABEL_SCRIPT = `local current = redis.call('GET', KEYS[1])
if current == false then return 1 end
if current == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0`;

/**
 * The review queue: a Redis stream `<prefix>review` read through the consumer group
 * `analysts`. Entries stay pending in the group until an analyst labels them, which
 * acknowledges them (XACK). Enqueueing never waits and never throws, so a Redis outage
 * costs review entries but never a request; `failures` counts what was lost.
 */
export class ReviewQueue {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #maxLength: number;
  readonly #maxEntriesPerUserHour: number;
  readonly #logger: Logger | undefined;
  #group: Promise<void> | undefined;
  #failures = 0;
  #limited = 0;

  constructor(redis: RedisClient, options: ReviewQueueOptions) {
    if (!Number.isSafeInteger(options.maxLength) || options.maxLength < 1) {
      throw new ReviewError('WG_REVIEW_INVALID_OPTION', `Option review.stream_max_length must be a positive integer, received ${String(options.maxLength)}.`);
    }
    this.#redis = redis;
    this.#prefix = options.prefix;
    const perUserHour = options.maxEntriesPerUserHour ?? Number.POSITIVE_INFINITY;
    if (perUserHour !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(perUserHour) || perUserHour < 1)) {
      throw new ReviewError('WG_REVIEW_INVALID_OPTION', `Option review.max_entries_per_user_hour must be a positive integer, received ${String(perUserHour)}.`);
    }
    this.#maxLength = options.maxLength;
    this.#maxEntriesPerUserHour = perUserHour;
    this.#logger = options.logger;
  }

  /** Redis key of the stream. */
  get streamKey(): string {
    return `${this.#prefix}review`;
  }

  /** Number of entries that could not be written since start-up. */
  get failures(): number {
    return this.#failures;
  }

  /** Number of decision entries not written since start-up because their user had reached the hourly limit. */
  get limitedEntries(): number {
    return this.#limited;
  }

  /**
   * Appends an entry without waiting for Redis; a failure is counted and logged (first and
   * every 100th). Decision entries beyond the user's hourly limit are counted, not written,
   * so that one user's flood of low-risk blocked requests cannot trim other entries, such as
   * their own break-glass claim, out of the stream. The audit trail still records every
   * decision. The caller exempts entries that must reach an analyst, such as high-risk ones.
   */
  enqueue(entry: ReviewEntry, options: { readonly exemptFromUserLimit?: boolean } = {}): void {
    void this.#addWithinLimit(entry, options.exemptFromUserLimit === true).catch((error: unknown) => {
      this.#failures += 1;
      if (this.#failures === 1 || this.#failures % 100 === 0) {
        this.#logger?.error({ err: error, failures: this.#failures, trace_id: entry.trace_id }, 'review entry could not be written to Redis; it is lost');
      }
    });
  }

  async #addWithinLimit(entry: ReviewEntry, exempt: boolean): Promise<void> {
    if (this.#maxEntriesPerUserHour === Number.POSITIVE_INFINITY) {
      await this.add(entry);
      return;
    }
    const limit = this.#maxEntriesPerUserHour;
    const counter = this.#userHourCounterKey(entry.user, entry.time);
    const count = await this.#increment(counter);
    if (entry.kind === 'break_glass' || exempt || count < limit) {
      await this.add(entry);
      return;
    }
    // The first low-risk decision at or past the limit is queued with the marker, so that
    // `wardgate review list` shows it even when a claim or an exempt entry took the limit's count.
    const marked = await this.#redis.set(`${counter}:marked`, '1', 'EX', USER_HOUR_COUNTER_TTL_S, 'NX');
    if (marked === 'OK') {
      this.#logger?.warn({ user: entry.user, trace_id: entry.trace_id, limit }, 'review entries of this user reached the hourly limit; their later low-risk decisions this hour are only in the audit trail');
      await this.add({ ...entry, user_hour_limit: limit });
      return;
    }
    this.#limited += 1;
  }

  /** Redis key of the user's entry counter for the UTC hour of `time`. */
  #userHourCounterKey(user: string, time: number): string {
    // Hash-tagged like the benign patterns, so one user's review keys share a Cluster slot.
    return `${this.#prefix}review:count:{${digest(user)}}:${Math.floor(time / HOUR_MS)}`;
  }

  /** Counts one entry on `key` and returns the count so far. */
  async #increment(key: string): Promise<number> {
    const results = await this.#redis.multi().incr(key).expire(key, USER_HOUR_COUNTER_TTL_S).exec();
    const [error, count] = results?.[0] ?? [new Error(`the MULTI on ${key} was aborted`), null];
    if (error) throw error;
    return Number(count);
  }

  /** Appends an entry and returns its stream id; rejects when Redis fails. */
  async add(entry: ReviewEntry): Promise<string> {
    await this.ensureGroup();
    const id = await this.#redis.xadd(this.streamKey, 'MAXLEN', '~', String(this.#maxLength), '*', 'entry', JSON.stringify(entry));
    return String(id);
  }

  /** Creates the consumer group (from the start of the stream) unless it exists. */
  ensureGroup(): Promise<void> {
    this.#group ??= this.#redis.xgroup('CREATE', this.streamKey, REVIEW_GROUP, '0', 'MKSTREAM').then(
      () => undefined,
      (error: Error) => {
        if (!/BUSYGROUP/.test(error.message)) {
          this.#group = undefined;
          throw error;
        }
      },
    );
    return this.#group;
  }

  /**
   * Returns the entries no analyst has labelled yet, oldest first. New entries are first
   * delivered to `consumer` so that they join the group's pending list.
   */
  async pending(consumer: string, limit = 1000): Promise<StoredReviewEntry[]> {
    await this.#deliverNew(consumer);
    const rows = (await this.#redis.xpending(this.streamKey, REVIEW_GROUP, '-', '+', limit)) as Array<[string, string, number, number]>;
    const result: StoredReviewEntry[] = [];
    for (const [id] of rows) {
      const stored = await this.#read(id);
      if (stored && !stored.label) result.push(stored);
    }
    return result;
  }

  /** Returns one entry with its label, if any. */
  async get(id: string): Promise<StoredReviewEntry> {
    assertStreamId(id);
    const stored = await this.#read(id);
    if (!stored) {
      throw new ReviewError('WG_REVIEW_ENTRY_NOT_FOUND', `Review entry ${JSON.stringify(id)} was not found in ${this.streamKey}; it may have been trimmed. Run "wardgate review list" for the pending ids.`);
    }
    return stored;
  }

  /** Stores an analyst's label and acknowledges the entry in the consumer group. */
  async label(id: string, label: LabelRecord['label'], note: string, analyst: string, now: number, consumer: string): Promise<{ stored: StoredReviewEntry; label: LabelRecord }> {
    const saved = await this.saveLabel(id, label, note, analyst, now);
    await this.acknowledge(id, consumer);
    return saved;
  }

  /**
   * Returns an entry that has no label yet.
   *
   * @throws ReviewError `WG_REVIEW_ENTRY_NOT_FOUND` or `WG_REVIEW_ALREADY_LABELLED`.
   */
  async unlabelled(id: string): Promise<StoredReviewEntry> {
    const stored = await this.get(id);
    if (stored.label) {
      throw new ReviewError('WG_REVIEW_ALREADY_LABELLED', `Review entry ${id} was already labelled ${stored.label.label} by ${stored.label.analyst}; labels are not overwritten.`);
    }
    return stored;
  }

  /**
   * Stores an analyst's label without acknowledging the entry. The caller acknowledges it
   * with `acknowledge` once the label is recorded, or undoes it with `removeLabel`.
   */
  async saveLabel(id: string, label: LabelRecord['label'], note: string, analyst: string, now: number): Promise<{ stored: StoredReviewEntry; label: LabelRecord }> {
    assertLabel(label);
    if (note.trim() === '') throw new ReviewError('WG_REVIEW_NOTE_MISSING', 'A label needs a note: pass --note TEXT saying why the access was benign or misuse.');
    if (analyst.trim() === '') throw new ReviewError('WG_REVIEW_NOTE_MISSING', 'A label needs the analyst: pass --analyst NAME.');

    const stored = await this.unlabelled(id);
    const record: LabelRecord = { entry_id: id, label, note, analyst, labelled_at: now };
    const created = await this.#redis.set(this.labelKey(id), JSON.stringify(record), 'EX', LABEL_TTL_S, 'NX');
    if (created === null) {
      throw new ReviewError('WG_REVIEW_ALREADY_LABELLED', `Review entry ${id} was labelled by someone else a moment ago; run "wardgate review show ${id}".`);
    }
    return { stored, label: record };
  }

  /** Acknowledges a labelled entry in the consumer group (XACK), so it leaves the pending list. */
  async acknowledge(id: string, consumer: string): Promise<void> {
    await this.#deliverNew(consumer);
    await this.#redis.xack(this.streamKey, REVIEW_GROUP, id);
  }

  /**
   * Deletes a label that `saveLabel` stored, unless the stored label differs from `record`.
   * Returns false only in that case. A label that no longer exists counts as removed.
   */
  async removeLabel(record: LabelRecord): Promise<boolean> {
    const result = await this.#redis.eval(REMOVE_LABEL_SCRIPT, 1, this.labelKey(record.entry_id), JSON.stringify(record));
    return result === 1;
  }

  /** Redis key of an entry's label. */
  labelKey(id: string): string {
    return `${this.#prefix}review:label:${id}`;
  }

  async #deliverNew(consumer: string): Promise<void> {
    await this.ensureGroup();
    for (let round = 0; round < 100; round++) {
      const batch = (await this.#redis.xreadgroup('GROUP', REVIEW_GROUP, consumer, 'COUNT', DELIVER_BATCH, 'STREAMS', this.streamKey, '>')) as Array<[string, unknown[]]> | null;
      const delivered = batch?.[0]?.[1].length ?? 0;
      if (delivered < DELIVER_BATCH) return;
    }
  }

  async #read(id: string): Promise<StoredReviewEntry | null> {
    const rows = (await this.#redis.xrange(this.streamKey, id, id)) as Array<[string, string[]]>;
    const fields = rows[0]?.[1];
    if (!fields) return null;
    const json = fields[fields.indexOf('entry') + 1];
    if (json === undefined) return null;
    const labelJson = await this.#redis.get(this.labelKey(id));
    return { id, entry: JSON.parse(json) as ReviewEntry, ...(labelJson ? { label: JSON.parse(labelJson) as LabelRecord } : {}) };
  }
}

/**
 * Patterns that analysts labelled benign, per user: the route plus the names of the top
 * features. A matching request is not flagged for review again until the record expires.
 */
export class BenignPatterns {
  readonly #redis: RedisClient;
  readonly #prefix: string;

  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async accept(user: string, pattern: string, ttlS: number, label: LabelRecord): Promise<void> {
    await this.#redis.set(this.#key(user, pattern), JSON.stringify({ user, pattern, ...label }), 'EX', ttlS);
  }

  async isAccepted(user: string, pattern: string): Promise<boolean> {
    return (await this.#redis.exists(this.#key(user, pattern))) === 1;
  }

  #key(user: string, pattern: string): string {
    // The user part is hash-tagged so a Redis Cluster keeps one user's patterns in one slot.
    return `${this.#prefix}review:benign:{${digest(user)}}:${digest(pattern)}`;
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32);
}

function assertStreamId(id: string): void {
  if (!STREAM_ID.test(id)) {
    throw new ReviewError('WG_REVIEW_ENTRY_NOT_FOUND', `Review entry id ${JSON.stringify(id.slice(0, 60))} is not a stream id such as 1733340000000-0; copy the id from "wardgate review list".`);
  }
}

function assertLabel(label: string): asserts label is ReviewLabel {
  if (label !== 'benign' && label !== 'misuse') {
    throw new ReviewError('WG_REVIEW_INVALID_LABEL', `Label ${JSON.stringify(label)} is not valid; use benign or misuse.`);
  }
}
