import { trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter as OtlpJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { BoundedBatchSpanProcessor, type SpanDropReason } from './bounded-span-processor.ts';
import type { OtelSettings } from './otel-env.ts';

export interface Tracing {
  readonly tracer: Tracer;
  /** Whether spans leave the process (an OTLP endpoint or an extra processor is configured). */
  readonly exporting: boolean;
  /** The processor in front of the OTLP exporter, or null when traces are not exported over OTLP. */
  readonly otlpProcessor: BoundedBatchSpanProcessor | null;
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  readonly settings: OtelSettings;
  readonly resource: Resource;
  /** Extra span processors, e.g. an in-memory exporter in tests. */
  readonly extraProcessors?: readonly SpanProcessor[];
  /** Called with every group of spans dropped on the way to the OTLP collector. */
  readonly onDrop?: (count: number, reason: SpanDropReason) => void;
}

/**
 * Sets up tracing once per process. Spans are always created, even with
 * `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_SAMPLER=always_off`, so every request has a trace
 * id to use as its incident id; they are exported over OTLP/HTTP only when
 * `settings.traces` names an endpoint. The exporter sits behind a
 * {@link BoundedBatchSpanProcessor}, so a failing collector costs bounded memory and no
 * request latency.
 */
export function startTracing(options: TracingOptions): Tracing {
  const { settings } = options;
  const processors: SpanProcessor[] = [...(options.extraProcessors ?? [])];

  let otlpProcessor: BoundedBatchSpanProcessor | null = null;
  if (settings.traces) {
    const target = settings.traces;
    // concurrencyLimit bounds the requests an abandoned export can leave open.
    const config = { url: target.url, headers: { ...target.headers }, timeoutMillis: Math.min(target.timeoutMs, settings.batch.exportTimeoutMs), concurrencyLimit: 2 };
    const exporter = target.protocol === 'http/json' ? new OtlpJsonTraceExporter(config) : new OtlpProtobufTraceExporter(config);
    otlpProcessor = new BoundedBatchSpanProcessor(exporter, { ...settings.batch, onDrop: options.onDrop });
    processors.push(otlpProcessor);
  }

  const provider = new NodeTracerProvider({ resource: options.resource, sampler: buildSampler(settings.sampler), spanProcessors: processors });
  return {
    tracer: provider.getTracer('wardgate'),
    exporting: processors.length > 0,
    otlpProcessor,
    shutdown: () => provider.shutdown(),
  };
}

/** Builds the sampler named by `OTEL_TRACES_SAMPLER`. */
export function buildSampler(sampler: OtelSettings['sampler']): Sampler {
  switch (sampler.name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(sampler.ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(sampler.ratio) });
  }
}

/** The no-op tracer still gives valid-looking ids; this reports whether a trace id is real. */
export function isValidTraceId(traceId: string): boolean {
  return /^[0-9a-f]{32}$/.test(traceId) && traceId !== '0'.repeat(32);
}

export { trace };
