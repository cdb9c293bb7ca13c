import type { Logger } from 'pino';

/** A failing disk is logged at the first failed write of an outage and then at most this often, in milliseconds. */
export const WRITE_ERROR_LOG_MS = 10_000;

/** State of the audit trail's writes, reported under `audit` in `/.wardgate/health`. */
export interface AuditHealth {
  /** Failed attempts to write a batch since the start. A batch is retried until it is written or the close gives up. */
  readonly failed_writes: number;
  /** Records appended but not yet handed to the operating system. */
  readonly pending_records: number;
  /** Records dropped because the queue was full while writes failed. */
  readonly dropped_records: number;
  /** Message of the error of the last write attempt, or null when that attempt succeeded. */
  readonly last_error: string | null;
}

/** Queue figures that each failure log line carries. */
export interface QueueState {
  readonly file: string;
  readonly records: number;
  readonly pendingRecords: number;
  readonly droppedRecords: number;
  /** Error of cutting the file back to its last complete batch, or null. The retry overwrites the partial batch either way. */
  readonly truncateError: unknown;
}

/**
 * Counts failed writes of the audit trail and logs them. The first failure of an outage is
 * logged at once, later ones at most every `WRITE_ERROR_LOG_MS` with the count so far, and
 * the first success after an outage at info level.
 */
export class WriteFailures {
  readonly #logger: Logger | undefined;
  #total = 0;
  #sinceSuccess = 0;
  #lastError: Error | null = null;
  #loggedAt = 0;

  constructor(logger: Logger | undefined) {
    this.#logger = logger;
  }

  /** Failed attempts to write a batch since the start. */
  get total(): number {
    return this.#total;
  }

  /** The error of the last write attempt, or null when that attempt succeeded. */
  get lastError(): Error | null {
    return this.#lastError;
  }

  recordFailure(error: unknown, queue: QueueState): void {
    this.#total++;
    this.#sinceSuccess++;
    this.#lastError = error instanceof Error ? error : new Error(String(error));

    const now = performance.now();
    if (this.#sinceSuccess > 1 && now - this.#loggedAt < WRITE_ERROR_LOG_MS) return;
    this.#loggedAt = now;
    this.#logger?.error(
      {
        err: error,
        file: queue.file,
        records: queue.records,
        failed_writes: this.#total,
        pending_records: queue.pendingRecords,
        dropped_records: queue.droppedRecords,
        ...(queue.truncateError ? { truncate_error: String(queue.truncateError) } : {}),
      },
      'audit write failed; the records stay queued and the write is retried every second',
    );
  }

  recordSuccess(pendingRecords: number): void {
    this.#lastError = null;
    if (this.#sinceSuccess === 0) return;

    this.#logger?.info({ failed_writes: this.#total, pending_records: pendingRecords }, `audit writes succeed again after ${this.#sinceSuccess} failed attempts`);
    this.#sinceSuccess = 0;
  }
}
