import type { Attributes, Counter, Histogram } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPMetricExporter as OtlpJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OtlpProtobufMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import type { Resource } from '@opentelemetry/resources';
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type IMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { OtelSettings } from './otel-env.ts';

/** Kind of operation a latency histogram measures. */
export type LatencyKind = 'scorer' | 'redis' | 'idp' | 'upstream';

/** Kind of file that was reloaded. */
export type ReloadKind = 'policy' | 'model';

/** Telemetry signal whose export dropped data. */
export type TelemetrySignal = 'traces' | 'metrics';

/** Bucket bounds in seconds for latency histograms: the HTTP semantic conventions' advice. */
const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const RISK_BUCKETS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1];

/**
 * Wardgate's metric instruments. Other parts call these methods. Each one is an in-memory
 * aggregation that ignores invalid numbers, so it is safe on the request path. Durations
 * are taken in milliseconds and recorded in seconds, the unit the semantic conventions use.
 */
export class WardgateMetrics {
  readonly #requests: Counter;
  readonly #risk: Histogram;
  readonly #latency: Record<LatencyKind, Histogram>;
  readonly #reloads: Counter;
  readonly #auditWrite: Histogram;
  readonly #exportDrops: Counter;
  readonly #serverDuration: Histogram;
  readonly #provider: MeterProvider;

  constructor(provider: MeterProvider) {
    this.#provider = provider;
    const meter = provider.getMeter('wardgate');
    const duration = (name: string, description: string): Histogram =>
      meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: DURATION_BUCKETS_S } });

    this.#requests = meter.createCounter('wardgate.requests', { unit: '{request}', description: 'Requests handled, by decision and route.' });
    this.#risk = meter.createHistogram('wardgate.risk', { unit: '1', description: 'Risk scores in [0, 1] of scored requests.', advice: { explicitBucketBoundaries: RISK_BUCKETS } });
    this.#latency = {
      scorer: duration('wardgate.scorer.duration', 'Time to score one request (features and model), including its Redis round trip.'),
      redis: duration('wardgate.redis.duration', 'Time of one call to a Redis-backed store.'),
      idp: duration('wardgate.idp.duration', 'Time of one request to the OIDC provider.'),
      upstream: duration('wardgate.upstream.duration', 'Time from sending a request upstream to the end of its response.'),
    };
    this.#reloads = meter.createCounter('wardgate.reloads', { unit: '{reload}', description: 'Policy and model reload attempts, by kind and outcome.' });
    this.#auditWrite = duration('wardgate.audit.write.duration', 'Time to write one audit record.');
    this.#serverDuration = duration('http.server.request.duration', 'Duration of HTTP server requests, from the request to the end of the response.');
    this.#exportDrops = meter.createCounter('wardgate.telemetry.dropped', { unit: '{item}', description: 'Spans or metric data points dropped instead of exported.' });
  }

  /** Counts one handled request. `action` is the decision (`allow`, `step_up`, `block`) or `none` when no decision was made. */
  recordRequest(action: string, route: string): void {
    this.#requests.add(1, { 'wardgate.decision': action, 'wardgate.route': route || 'none' });
  }

  recordRisk(risk: number, route?: string): void {
    if (!Number.isFinite(risk)) return;
    const attributes: Attributes = route ? { 'wardgate.route': route } : {};
    this.#risk.record(Math.min(1, Math.max(0, risk)), attributes);
  }

  recordLatency(kind: LatencyKind, ms: number, attributes: Attributes = {}): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#latency[kind]?.record(ms / 1000, attributes);
  }

  /** Records one HTTP request's duration with the semantic conventions' attributes (method, status, route). */
  recordServerRequest(ms: number, attributes: { method: string; status: number | null; route: string | null }): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    const recorded: Attributes = { 'http.request.method': attributes.method, 'url.scheme': 'https' };
    if (attributes.status !== null) recorded['http.response.status_code'] = attributes.status;
    else recorded['error.type'] = 'client_closed';
    if (attributes.route) recorded['http.route'] = attributes.route;
    this.#serverDuration.record(ms / 1000, recorded);
  }

  recordReload(kind: ReloadKind, ok: boolean): void {
    this.#reloads.add(1, { 'wardgate.reload.kind': kind, 'wardgate.reload.outcome': ok ? 'success' : 'failure' });
  }

  recordAuditWrite(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#auditWrite.record(ms / 1000);
  }

  recordExportDrop(signal: TelemetrySignal, count: number, reason = 'unknown'): void {
    if (!Number.isInteger(count) || count <= 0) return;
    this.#exportDrops.add(count, { 'wardgate.telemetry.signal': signal, 'wardgate.telemetry.reason': reason });
  }

  /** Exports what has been collected so far through every push reader (OTLP). */
  forceFlush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /** Collects and exports once more, then stops every reader. */
  shutdown(): Promise<void> {
    return this.#provider.shutdown();
  }
}

/**
 * Creates the meter provider with an OTLP reader when `settings.metrics` names an endpoint,
 * plus any `extraReaders` (the Prometheus endpoint, or an in-memory reader in tests).
 */
export function createMetrics(settings: OtelSettings, resource: Resource, extraReaders: readonly IMetricReader[] = [], onDrop?: (count: number) => void): WardgateMetrics {
  const readers: IMetricReader[] = [...extraReaders];
  let metrics: WardgateMetrics | null = null;

  if (settings.metrics) {
    const target = settings.metrics;
    const config = { url: target.url, headers: { ...target.headers }, timeoutMillis: target.timeoutMs, concurrencyLimit: 2 };
    const exporter = target.protocol === 'http/json' ? new OtlpJsonMetricExporter(config) : new OtlpProtobufMetricExporter(config);
    const counted = new DropCountingMetricExporter(exporter, (count) => {
      metrics?.recordExportDrop('metrics', count, 'export_failed');
      onDrop?.(count);
    });
    readers.push(new PeriodicExportingMetricReader({ exporter: counted, exportIntervalMillis: settings.metricExport.intervalMs, exportTimeoutMillis: settings.metricExport.timeoutMs }));
  }

  metrics = new WardgateMetrics(new MeterProvider({ resource, readers }));
  return metrics;
}

/** Wraps a metric exporter to report how many data points each failed export lost. */
export class DropCountingMetricExporter implements PushMetricExporter {
  readonly #inner: PushMetricExporter;
  readonly #onDrop: (count: number) => void;

  constructor(inner: PushMetricExporter, onDrop: (count: number) => void) {
    this.#inner = inner;
    this.#onDrop = onDrop;
    if (inner.selectAggregationTemporality) this.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
    if (inner.selectAggregation) this.selectAggregation = inner.selectAggregation.bind(inner);
  }

  selectAggregationTemporality?: PushMetricExporter['selectAggregationTemporality'];
  selectAggregation?: PushMetricExporter['selectAggregation'];

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    this.#inner.export(metrics, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.#onDrop(countDataPoints(metrics));
      resultCallback(result);
    });
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

function countDataPoints(metrics: ResourceMetrics): number {
  let count = 0;
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) count += metric.dataPoints.length;
  }
  return count;
}
