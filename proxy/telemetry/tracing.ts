import { trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

export interface Tracing {
  readonly tracer: Tracer;
  /** Whether spans leave the process (an OTLP endpoint or an extra processor is configured). */
  readonly exporting: boolean;
  shutdown(): Promise<void>;
}

/**
 * Sets up tracing once per process. Spans are always created, so every request has a trace
 * id to use as its incident id; they are exported over OTLP/HTTP only when the standard
 * `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. The
 * exporter reads the other `OTEL_EXPORTER_OTLP_*` variables itself.
 */
export function startTracing(options: { env?: NodeJS.ProcessEnv; extraProcessors?: SpanProcessor[] } = {}): Tracing {
  const env = options.env ?? process.env;
  const processors: SpanProcessor[] = [...(options.extraProcessors ?? [])];
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    // The batch processor bounds memory (maxQueueSize) and drops spans rather than block
    // requests when the collector is slow or down.
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter(), { maxQueueSize: 4096, scheduledDelayMillis: 1000 }));
  }

  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: env.OTEL_SERVICE_NAME ?? 'wardgate' }),
    spanProcessors: processors,
  });
  return {
    tracer: provider.getTracer('wardgate'),
    exporting: processors.length > 0,
    shutdown: () => provider.shutdown(),
  };
}

/** The no-op tracer still gives valid-looking ids; this reports whether a trace id is real. */
export function isValidTraceId(traceId: string): boolean {
  return /^[0-9a-f]{32}$/.test(traceId) && traceId !== '0'.repeat(32);
}

export { trace };
