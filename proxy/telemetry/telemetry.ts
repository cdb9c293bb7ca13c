import type { Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { IMetricReader } from '@opentelemetry/sdk-metrics';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { DEFAULT_TELEMETRY_CONFIG, type TelemetryConfig } from './config.ts';
import { createMetrics, type WardgateMetrics } from './metrics.ts';
import { parseOtelEnv, type OtelSettings } from './otel-env.ts';
import type { PatientPaths } from '../../scorer/features/patient-paths.ts';
import { PatientPathRedactor } from './patient-redaction.ts';
import { startPrometheusEndpoint, type PrometheusEndpoint } from './prometheus.ts';
import type { RequestTelemetry } from './server-span.ts';
import { startTracing, type Tracing } from './tracing.ts';
import { TrustedHops } from './trusted-hops.ts';

/** Options of {@link startTelemetry}. */
export interface TelemetryOptions {
  /** Environment to read `OTEL_*` from; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  readonly config?: TelemetryConfig;
  /** HMAC key for patient pseudonyms in paths; without it paths are left out of spans. */
  readonly patientKey?: Uint8Array;
  /** The compiled `scorer.patient_paths`, so that ids in configured page paths are redacted too. */
  readonly patientPaths?: PatientPaths;
  readonly extraSpanProcessors?: readonly SpanProcessor[];
  readonly extraMetricReaders?: readonly IMetricReader[];
}

/** Tracing, metrics and the request-path helpers, started once per process. */
export interface Telemetry {
  readonly settings: OtelSettings;
  readonly resource: Resource;
  readonly tracer: Tracer;
  readonly tracing: Tracing;
  readonly metrics: WardgateMetrics;
  /** The Prometheus endpoint, when `telemetry.prometheus` is configured. */
  readonly prometheus: PrometheusEndpoint | null;
  /** Telemetry dependencies of the request pipeline (its `telemetry` field). */
  readonly request: RequestTelemetry;
  /** Sets the logger that reports dropped telemetry, at most one line per minute. */
  attachLogger(logger: Logger): void;
  /** Summary of the trace and metric destinations for the start-up log line, without header values. */
  summary(): Record<string, unknown>;
  shutdown(): Promise<void>;
}

/**
 * Starts tracing and metrics from the `OTEL_*` environment variables and the `telemetry`
 * section of the configuration, and the Prometheus endpoint when one is configured.
 *
 * @throws {TelemetryError} `WG_TELEMETRY_INVALID_ENV` naming the invalid variable, before
 *   anything is started; or the listen error of the Prometheus endpoint.
 */
export async function startTelemetry(options: TelemetryOptions = {}): Promise<Telemetry> {
  const settings = parseOtelEnv(options.env ?? process.env);
  const config = options.config ?? DEFAULT_TELEMETRY_CONFIG;
  const trustedHops = new TrustedHops(config.trusted_hops);
  const redactor = options.patientKey && options.patientKey.byteLength > 0 ? new PatientPathRedactor(options.patientKey, options.patientPaths) : null;
  const resource = resourceFromAttributes({ ...settings.resourceAttributes, [ATTR_SERVICE_NAME]: settings.serviceName });

  const prometheus = config.prometheus ? await startPrometheusEndpoint(config.prometheus.host, config.prometheus.port) : null;
  const readers = [...(options.extraMetricReaders ?? []), ...(prometheus ? [prometheus.reader] : [])];
  const dropLog = new DropLog();
  const metrics = createMetrics(settings, resource, readers, (count) => dropLog.add('metrics', count, 'export_failed'));
  const tracing = startTracing({
    settings,
    resource,
    extraProcessors: options.extraSpanProcessors,
    onDrop: (count, reason) => {
      metrics.recordExportDrop('traces', count, reason);
      dropLog.add('traces', count, reason);
    },
  });

  return {
    settings,
    resource,
    tracer: tracing.tracer,
    tracing,
    metrics,
    prometheus,
    request: { metrics, redactor, trustedHops },
    attachLogger: (logger) => dropLog.attach(logger),
    summary: () => ({
      service_name: settings.serviceName,
      sdk_disabled: settings.disabled,
      traces_endpoint: settings.traces?.url ?? null,
      metrics_endpoint: settings.metrics?.url ?? null,
      sampler: settings.sampler.ratio === 1 ? settings.sampler.name : `${settings.sampler.name}(${settings.sampler.ratio})`,
      prometheus: prometheus ? `http://${prometheus.address.family === 'IPv6' ? `[${prometheus.address.address}]` : prometheus.address.address}:${prometheus.address.port}/metrics` : null,
      trusted_hops: config.trusted_hops,
    }),
    shutdown: async () => {
      await tracing.shutdown().catch(() => {});
      await metrics.shutdown().catch(() => {});
      await prometheus?.close();
    },
  };
}

/** Minimum time in milliseconds between two log lines about dropped telemetry. */
const DROP_LOG_INTERVAL_MS = 60_000;

/**
 * Logs dropped spans and data points at most once a minute, with the counts since the
 * previous line, so a collector outage gives a few lines instead of one per batch.
 */
class DropLog {
  #logger: Logger | null = null;
  #pending: Record<string, number> = {};
  #lastLoggedAt = -Infinity;

  attach(logger: Logger): void {
    this.#logger = logger;
  }

  add(signal: 'traces' | 'metrics', count: number, reason: string): void {
    const key = `${signal}.${reason}`;
    this.#pending[key] = (this.#pending[key] ?? 0) + count;

    const now = Date.now();
    if (!this.#logger || now - this.#lastLoggedAt < DROP_LOG_INTERVAL_MS) return;
    this.#lastLoggedAt = now;
    this.#logger.warn({ dropped: this.#pending }, 'telemetry export dropped data; check that the OTLP collector is reachable and healthy');
    this.#pending = {};
  }
}
