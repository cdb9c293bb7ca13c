import { context, TraceFlags, type Context } from '@opentelemetry/api';
import { ExportResultCode, suppressTracing } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

/** Reason spans were dropped instead of exported. */
export type SpanDropReason = 'queue_full' | 'export_failed' | 'export_timeout' | 'shutdown';

/** Options of {@link BoundedBatchSpanProcessor}; all counts are spans and all times milliseconds. */
export interface BoundedBatchOptions {
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly scheduledDelayMs: number;
  /** Time one export may take; after it the batch counts as dropped and the next export may start. */
  readonly exportTimeoutMs: number;
  /** Called with every group of spans that will never reach the collector. */
  readonly onDrop?: (count: number, reason: SpanDropReason) => void;
}

/**
 * Batches ended spans for an exporter with a hard bound on memory. Ended spans wait in a
 * queue of at most `maxQueueSize`. A span arriving at a full queue is dropped at once and
 * counted, so a collector that is down, slow or failing never slows a request. At most one
 * export runs at a time, and each is abandoned after `exportTimeoutMs`. That bounds what a
 * collector that never responds can hold on to.
 *
 * The SDK's own BatchSpanProcessor (version 2.12) drops in the same way, but it reports
 * drops only as a diagnostic log line. This processor reports them to `onDrop` for the
 * export-drops metric.
 */
export class BoundedBatchSpanProcessor implements SpanProcessor {
  readonly #exporter: SpanExporter;
  readonly #options: BoundedBatchOptions;
  readonly #queue: ReadableSpan[] = [];
  readonly #timer: NodeJS.Timeout;
  #inFlight: Promise<void> | null = null;
  #shutdown = false;

  constructor(exporter: SpanExporter, options: BoundedBatchOptions) {
    for (const name of ['maxQueueSize', 'maxExportBatchSize', 'scheduledDelayMs', 'exportTimeoutMs'] as const) {
      const value = options[name];
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`BoundedBatchSpanProcessor option ${name} must be a positive integer, received ${String(value)}.`);
    }
    if (options.maxExportBatchSize > options.maxQueueSize) {
      throw new RangeError(`BoundedBatchSpanProcessor option maxExportBatchSize (${options.maxExportBatchSize}) must not exceed maxQueueSize (${options.maxQueueSize}).`);
    }

    this.#exporter = exporter;
    this.#options = options;
    this.#timer = setInterval(() => this.#exportNext(), options.scheduledDelayMs);
    this.#timer.unref();
  }

  /** Number of spans waiting to be exported; never above `maxQueueSize`. */
  get queueLength(): number {
    return this.#queue.length;
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.#shutdown) return;
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;

    if (this.#queue.length >= this.#options.maxQueueSize) {
      this.#options.onDrop?.(1, 'queue_full');
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#options.maxExportBatchSize) this.#exportNext();
  }

  /** Exports everything queued now, one batch after another; failures are counted, not thrown. */
  async forceFlush(): Promise<void> {
    // A finished export may start the next batch itself, so loop until nothing is in flight.
    while (this.#inFlight || this.#queue.length > 0) {
      this.#exportNext();
      await this.#inFlight;
    }
  }

  /**
   * Stops the timer and exports what is queued, for at most `exportTimeoutMs` in all, so
   * that a dead collector cannot hold up the process's exit. Spans still queued after that
   * are counted as dropped with reason `shutdown`.
   */
  async shutdown(): Promise<void> {
    if (this.#shutdown) return;
    this.#shutdown = true;
    clearInterval(this.#timer);

    let deadline: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      deadline = setTimeout(resolve, this.#options.exportTimeoutMs);
    });
    await Promise.race([this.forceFlush(), expired]);
    clearTimeout(deadline);

    const left = this.#queue.splice(0);
    if (left.length > 0) this.#options.onDrop?.(left.length, 'shutdown');
    await Promise.race([this.#exporter.shutdown(), new Promise<void>((resolve) => setTimeout(resolve, this.#options.exportTimeoutMs).unref())]);
  }

  #exportNext(): void {
    if (this.#inFlight || this.#queue.length === 0) return;

    const batch = this.#queue.splice(0, this.#options.maxExportBatchSize);
    this.#inFlight = this.#exportBatch(batch).finally(() => {
      this.#inFlight = null;
      if (this.#queue.length >= this.#options.maxExportBatchSize) this.#exportNext();
    });
  }

  #exportBatch(batch: ReadableSpan[]): Promise<void> {
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (reason: SpanDropReason | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        if (reason) this.#options.onDrop?.(batch.length, reason);
        resolve();
      };
      const timeout = setTimeout(() => settle('export_timeout'), this.#options.exportTimeoutMs);
      timeout.unref();

      // The exporter's own HTTP requests must not be traced, or every export would make spans.
      context.with(suppressTracing(context.active()), () => {
        try {
          this.#exporter.export(batch, (result) => settle(result.code === ExportResultCode.SUCCESS ? null : 'export_failed'));
        } catch {
          settle('export_failed');
        }
      });
    });
  }
}
