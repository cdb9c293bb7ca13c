import { fileVersion, watchFileVersion } from '../file-watch.ts';

import { ScorerError, isScorerError } from '../errors.ts';
import type { Contribution } from '../types.ts';
import type { ModelMetadata } from './metadata.ts';
import { loadRiskModel, type RiskModel } from './risk-model.ts';

export interface ModelRunnerOptions {
  /** Path of the ONNX model file; it is watched for changes unless `pollMs` is 0. */
  readonly path: string;
  /** Maximum rows in one inference run; default 32. */
  readonly batchMax?: number;
  /** How long the first queued row waits for more rows before the batch runs, in microseconds; default 200. */
  readonly batchWaitUs?: number;
  /** Maximum time one `run` call may take, queueing included, in milliseconds; default 200. */
  readonly deadlineMs?: number;
  /** Interval in milliseconds at which the model file is checked for changes; 0 turns watching off. Default 1000. */
  readonly pollMs?: number;
  /** Opens a model file; default `loadRiskModel`. */
  readonly load?: (path: string) => Promise<RiskModel>;
  /** Called after a changed model file was loaded and put in force. */
  readonly onReload?: (version: string) => void;
  /** Called when a changed model file failed to load; the previous model stays in force. */
  readonly onReloadError?: (error: Error) => void;
}

/** Counters of a runner, for tests and the benchmark. */
export interface ModelRunnerStats {
  /** Inference runs started. */
  readonly runs: number;
  /** Rows sent to the model over all runs. */
  readonly rows: number;
}

/** A risk model with hot reload and batched inference under a deadline. */
export interface ModelRunner extends RiskModel {
  /** The message of the last failed reload, or null when the last load succeeded. */
  lastReloadError(): string | null;
  /** Reloads the model file now; the watcher calls this on a change. */
  reload(): Promise<void>;
  stats(): ModelRunnerStats;
}

interface PendingRow {
  readonly row: Float32Array;
  readonly resolve: (risk: number) => void;
  readonly reject: (error: Error) => void;
  /** Set when the call's deadline passed, so that a batch skips a row whose caller has given up. */
  cancelled: boolean;
}

type RunnerSettings = { readonly [K in keyof typeof LIMITS]: number };

const LIMITS = {
  batchMax: { min: 1, max: 4096, fallback: 32 },
  batchWaitUs: { min: 0, max: 1_000_000, fallback: 200 },
  deadlineMs: { min: 1, max: 60_000, fallback: 200 },
  pollMs: { min: 0, max: 3_600_000, fallback: 1000 },
} as const;

/**
 * Opens the model file and wraps it for the request path:
 *
 * - **Hot reload**: the file is polled every `pollMs`; a changed file is loaded and checked
 *   (ONNX metadata, feature list) before it replaces the model in force. A file that fails to
 *   load, such as a half-written or mismatching one, leaves the previous model in force and is
 *   reported by `lastReloadError()` and `onReloadError`.
 * - **Batching**: rows of concurrent `run` calls are queued and sent to the model as one
 *   `[N, F]` tensor, at most `batchMax` rows, once the first row has waited `batchWaitUs`
 *   or the queue is full.
 * - **Deadline**: a `run` call that has not finished within `deadlineMs` rejects with
 *   `WG_SCORER_INFERENCE_FAILED`, as does a model failure, so the route's fail mode for the
 *   `scorer` dependency decides the request.
 *
 * @throws {ScorerError} `WG_SCORER_INVALID_OPTION`, or the load errors of `loadRiskModel` at start.
 */
export async function createModelRunner(options: ModelRunnerOptions): Promise<ModelRunner> {
  const settings = {
    batchMax: readLimit(options, 'batchMax'),
    batchWaitUs: readLimit(options, 'batchWaitUs'),
    deadlineMs: readLimit(options, 'deadlineMs'),
    pollMs: readLimit(options, 'pollMs'),
  };
  const load = options.load ?? loadRiskModel;
  const version = await fileVersion(options.path);
  const model = await load(options.path);

  return new BatchingModelRunner(options, settings, load, model, version);
}

class BatchingModelRunner implements ModelRunner {
  readonly #options: ModelRunnerOptions;
  readonly #settings: RunnerSettings;
  readonly #load: (path: string) => Promise<RiskModel>;
  readonly #inFlight = new Map<RiskModel, number>();
  readonly #retiring = new Set<RiskModel>();
  readonly #onChange = () => void this.reload();
  readonly #stopWatching: () => void;
  #current: RiskModel;
  #queue: PendingRow[] = [];
  #scheduled = false;
  #reloading: Promise<void> = Promise.resolve();
  #lastError: string | null = null;
  #runs = 0;
  #rows = 0;
  #closed = false;

  constructor(options: ModelRunnerOptions, settings: RunnerSettings, load: (path: string) => Promise<RiskModel>, model: RiskModel, version: string) {
    this.#options = options;
    this.#settings = settings;
    this.#load = load;
    this.#current = model;
    this.#stopWatching = settings.pollMs > 0 ? watchFileVersion(options.path, settings.pollMs, version, this.#onChange) : () => {};
  }

  get version(): string {
    return this.#current.version;
  }

  get metadata(): ModelMetadata {
    return this.#current.metadata;
  }

  run(rows: readonly Float32Array[]): Promise<number[]> {
    if (this.#closed) return Promise.reject(inferenceFailed('the model runner is closed'));

    const pending: PendingRow[] = [];
    const risks = Promise.all(rows.map((row) => new Promise<number>((resolve, reject) => {
      const entry: PendingRow = { row, resolve, reject, cancelled: false };
      pending.push(entry);
      this.#enqueue(entry);
    })));

    return new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        for (const entry of pending) entry.cancelled = true;
        reject(new ScorerError(
          'WG_SCORER_INFERENCE_FAILED',
          `Model inference timed out after ${this.#settings.deadlineMs} ms (scorer.deadline_ms); the route's fail mode for the scorer applies.`,
          { detail: { reason: 'deadline', deadline_ms: this.#settings.deadlineMs } },
        ));
      }, this.#settings.deadlineMs);
      risks.then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }

  explain(row: Float32Array): Contribution[] {
    // NOTE: a reload between `run` and `explain` gives a risk and an explanation from two models.
    return this.#current.explain(row);
  }

  lastReloadError(): string | null {
    return this.#lastError;
  }

  stats(): ModelRunnerStats {
    return { runs: this.#runs, rows: this.#rows };
  }

  reload(): Promise<void> {
    this.#reloading = this.#reloading.then(() => this.#reloadNow());
    return this.#reloading;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatching();
    await this.#reloading;
    for (const entry of this.#queue.splice(0)) entry.reject(inferenceFailed('the model runner was closed'));
    this.#retire(this.#current);
  }

  async #reloadNow(): Promise<void> {
    if (this.#closed) return;

    let candidate: RiskModel;
    try {
      candidate = await this.#load(this.#options.path);
    } catch (error) {
      this.#lastError = (error as Error).message;
      this.#options.onReloadError?.(error as Error);
      return;
    }

    if (candidate.version === this.#current.version || this.#closed) {
      await candidate.close();
      if (!this.#closed) this.#lastError = null;
      return;
    }

    const previous = this.#current;
    this.#current = candidate;
    this.#lastError = null;
    this.#retire(previous);
    this.#options.onReload?.(candidate.version);
  }

  #enqueue(entry: PendingRow): void {
    this.#queue.push(entry);
    if (this.#queue.length >= this.#settings.batchMax) {
      this.#flush();
      return;
    }

    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;

    const waitUs = this.#settings.batchWaitUs;
    if (waitUs >= 1000) {
      setTimeout(() => this.#flush(), waitUs / 1000);
      return;
    }

    // Timers have millisecond resolution, so shorter waits poll the clock once per event-loop
    // turn; I/O callbacks (more requests) run between the polls.
    const start = process.hrtime.bigint();
    const tick = () => {
      if (Number(process.hrtime.bigint() - start) / 1000 >= waitUs) this.#flush();
      else setImmediate(tick);
    };
    setImmediate(tick);
  }

  #flush(): void {
    this.#scheduled = false;
    this.#queue = this.#queue.filter((entry) => !entry.cancelled);

    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#settings.batchMax);
      this.#runBatch(batch);
      if (this.#queue.length < this.#settings.batchMax) break;
    }

    if (this.#queue.length > 0) this.#schedule();
  }

  #runBatch(batch: PendingRow[]): void {
    const model = this.#current;
    this.#runs++;
    this.#rows += batch.length;
    this.#inFlight.set(model, (this.#inFlight.get(model) ?? 0) + 1);

    Promise.resolve()
      .then(() => model.run(batch.map((entry) => entry.row)))
      .then(
        (risks) => batch.forEach((entry, index) => entry.resolve(risks[index]!)),
        (error: unknown) => {
          const failure = isScorerError(error) ? error : inferenceFailed((error as Error).message, error);
          for (const entry of batch) entry.reject(failure);
        },
      )
      .finally(() => {
        const count = (this.#inFlight.get(model) ?? 1) - 1;
        if (count > 0) {
          this.#inFlight.set(model, count);
          return;
        }
        this.#inFlight.delete(model);
        if (this.#retiring.has(model)) this.#release(model);
      });
  }

  /** Releases a replaced model once no batch runs on it any more. */
  #retire(model: RiskModel): void {
    if ((this.#inFlight.get(model) ?? 0) === 0) this.#release(model);
    else this.#retiring.add(model);
  }

  #release(model: RiskModel): void {
    this.#retiring.delete(model);
    model.close().catch(() => {
      // Releasing a replaced session can only fail inside onnxruntime; nothing is left to do.
    });
  }
}

function readLimit(options: ModelRunnerOptions, name: keyof typeof LIMITS): number {
  const { min, max, fallback } = LIMITS[name];
  const value = options[name] ?? fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ScorerError('WG_SCORER_INVALID_OPTION', `Invalid option ${name}: expected a whole number from ${min} to ${max}, received ${String(value)}.`, {
      detail: { option: name },
    });
  }

  return value;
}

function inferenceFailed(reason: string, cause?: unknown): ScorerError {
  return new ScorerError('WG_SCORER_INFERENCE_FAILED', `Model inference failed: ${reason}.`, { cause });
}
