import { invalidEnv, TelemetryError } from './errors.ts';

/** OTLP transports Wardgate can export over. */
export type OtlpProtocol = 'http/protobuf' | 'http/json';

/** Values of `OTEL_TRACES_SAMPLER` that Wardgate supports. */
export type SamplerName = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

/** Where and how one signal (traces or metrics) is exported. */
export interface OtlpTarget {
  /** Full URL that batches are posted to, e.g. `http://collector:4318/v1/traces`. */
  readonly url: string;
  readonly protocol: OtlpProtocol;
  readonly headers: Readonly<Record<string, string>>;
  /** Time in milliseconds one export request may take before it is abandoned. */
  readonly timeoutMs: number;
}

/** Telemetry settings read from the standard OpenTelemetry environment variables. */
export interface OtelSettings {
  /** `OTEL_SDK_DISABLED=true`: nothing is exported, but spans still give incident ids. */
  readonly disabled: boolean;
  readonly serviceName: string;
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** Null when traces are not exported (no endpoint, `OTEL_TRACES_EXPORTER=none` or disabled). */
  readonly traces: OtlpTarget | null;
  /** Null when metrics are not exported over OTLP. */
  readonly metrics: OtlpTarget | null;
  readonly sampler: { readonly name: SamplerName; readonly ratio: number };
  /** Span batching limits (`OTEL_BSP_*`). */
  readonly batch: { readonly maxQueueSize: number; readonly maxExportBatchSize: number; readonly scheduledDelayMs: number; readonly exportTimeoutMs: number };
  /** Interval and timeout of OTLP metric exports in milliseconds (`OTEL_METRIC_EXPORT_*`). */
  readonly metricExport: { readonly intervalMs: number; readonly timeoutMs: number };
}

const SAMPLERS: readonly SamplerName[] = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];
const PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json'];
const DEFAULT_SERVICE_NAME = 'wardgate';
const MAX_LIST_LENGTH = 8192;

/**
 * Reads the OpenTelemetry SDK settings from the standard environment variables, following
 * the OpenTelemetry specification ("Environment Variable Specification" and "OTLP Exporter
 * Configuration"). An empty variable counts as unset. Every invalid value raises an error
 * naming the variable, the value and what is accepted, so start-up fails instead of
 * silently exporting nothing.
 *
 * @throws {TelemetryError} `WG_TELEMETRY_INVALID_ENV`.
 */
export function parseOtelEnv(env: NodeJS.ProcessEnv): OtelSettings {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };

  const disabled = parseBoolean('OTEL_SDK_DISABLED', read('OTEL_SDK_DISABLED'));
  const resourceAttributes = parseKeyValueList('OTEL_RESOURCE_ATTRIBUTES', read('OTEL_RESOURCE_ATTRIBUTES'));
  const serviceName = read('OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? DEFAULT_SERVICE_NAME;

  const sampler = parseSampler(read('OTEL_TRACES_SAMPLER'), read('OTEL_TRACES_SAMPLER_ARG'));
  const maxQueueSize = parseInteger('OTEL_BSP_MAX_QUEUE_SIZE', read('OTEL_BSP_MAX_QUEUE_SIZE'), 2048, 1, 1_000_000);
  const maxExportBatchSize = parseInteger('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', read('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'), Math.min(512, maxQueueSize), 1, 1_000_000);
  if (maxExportBatchSize > maxQueueSize) {
    invalidEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', String(maxExportBatchSize), `a batch size no larger than OTEL_BSP_MAX_QUEUE_SIZE (${maxQueueSize})`);
  }
  const batch = {
    maxQueueSize,
    maxExportBatchSize,
    scheduledDelayMs: parseInteger('OTEL_BSP_SCHEDULE_DELAY', read('OTEL_BSP_SCHEDULE_DELAY'), 1000, 1, 3_600_000),
    exportTimeoutMs: parseInteger('OTEL_BSP_EXPORT_TIMEOUT', read('OTEL_BSP_EXPORT_TIMEOUT'), 10_000, 1, 600_000),
  };
  const metricExport = {
    intervalMs: parseInteger('OTEL_METRIC_EXPORT_INTERVAL', read('OTEL_METRIC_EXPORT_INTERVAL'), 60_000, 1, 86_400_000),
    timeoutMs: parseInteger('OTEL_METRIC_EXPORT_TIMEOUT', read('OTEL_METRIC_EXPORT_TIMEOUT'), 30_000, 1, 600_000),
  };

  const traces = parseTarget(read, 'TRACES', 'v1/traces');
  const metrics = parseTarget(read, 'METRICS', 'v1/metrics');
  return {
    disabled,
    serviceName,
    resourceAttributes,
    traces: disabled ? null : traces,
    metrics: disabled ? null : metrics,
    sampler,
    batch,
    metricExport: { intervalMs: metricExport.intervalMs, timeoutMs: Math.min(metricExport.timeoutMs, metricExport.intervalMs) },
  };
}

/**
 * Reads the endpoint, protocol, headers and timeout of one signal. The signal's own
 * variable (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is used as given; the shared
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL that gets the signal's path appended.
 */
function parseTarget(read: (name: string) => string | undefined, signal: 'TRACES' | 'METRICS', signalPath: string): OtlpTarget | null {
  const exporterVariable = `OTEL_${signal}_EXPORTER`;
  const exporter = read(exporterVariable) ?? 'otlp';
  if (exporter !== 'otlp' && exporter !== 'none') invalidEnv(exporterVariable, exporter, '"otlp" or "none"');

  const protocolVariable = read(`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`) === undefined ? 'OTEL_EXPORTER_OTLP_PROTOCOL' : `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`;
  const protocol = parseProtocol(protocolVariable, read(protocolVariable));
  const headers = {
    ...parseKeyValueList('OTEL_EXPORTER_OTLP_HEADERS', read('OTEL_EXPORTER_OTLP_HEADERS')),
    ...parseKeyValueList(`OTEL_EXPORTER_OTLP_${signal}_HEADERS`, read(`OTEL_EXPORTER_OTLP_${signal}_HEADERS`)),
  };
  const sharedTimeout = parseInteger('OTEL_EXPORTER_OTLP_TIMEOUT', read('OTEL_EXPORTER_OTLP_TIMEOUT'), 10_000, 1, 600_000);
  const timeoutMs = parseInteger(`OTEL_EXPORTER_OTLP_${signal}_TIMEOUT`, read(`OTEL_EXPORTER_OTLP_${signal}_TIMEOUT`), sharedTimeout, 1, 600_000);

  const signalEndpoint = read(`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`);
  const baseEndpoint = read('OTEL_EXPORTER_OTLP_ENDPOINT');
  let url: string | null = null;
  if (signalEndpoint !== undefined) {
    url = parseHttpUrl(`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`, signalEndpoint).href;
  } else if (baseEndpoint !== undefined) {
    const base = parseHttpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', baseEndpoint);
    url = new URL(signalPath, base.href.endsWith('/') ? base.href : `${base.href}/`).href;
  }

  if (exporter === 'none' || url === null) return null;
  return { url, protocol, headers, timeoutMs };
}

function parseProtocol(name: string, value: string | undefined): OtlpProtocol {
  if (value === undefined) return 'http/protobuf';
  if ((PROTOCOLS as readonly string[]).includes(value)) return value as OtlpProtocol;
  if (value === 'grpc') {
    throw new TelemetryError(
      'WG_TELEMETRY_INVALID_ENV',
      name,
      `Environment variable ${name} is "grpc", which Wardgate does not support: set it to "http/protobuf" or "http/json" and point the endpoint at the collector's OTLP/HTTP port (4318 by default).`,
    );
  }
  return invalidEnv(name, value, `one of ${PROTOCOLS.map((protocol) => `"${protocol}"`).join(', ')}`);
}

function parseSampler(name: string | undefined, argument: string | undefined): { name: SamplerName; ratio: number } {
  const sampler = name ?? 'parentbased_always_on';
  if (!(SAMPLERS as readonly string[]).includes(sampler)) {
    invalidEnv('OTEL_TRACES_SAMPLER', sampler, `one of ${SAMPLERS.join(', ')}`);
  }

  let ratio = 1;
  if (argument !== undefined && sampler.endsWith('traceidratio')) {
    ratio = Number(argument);
    if (!/^\d*\.?\d+(e-?\d+)?$/i.test(argument) || !(ratio >= 0 && ratio <= 1)) {
      invalidEnv('OTEL_TRACES_SAMPLER_ARG', argument, `a sampling probability from 0 to 1 for ${sampler}, e.g. 0.25`);
    }
  }
  return { name: sampler as SamplerName, ratio };
}

function parseBoolean(name: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  return invalidEnv(name, value, '"true" or "false"');
}

function parseInteger(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < min || number > max) {
    invalidEnv(name, value, `an integer from ${min} to ${max}`);
  }
  return number;
}

function parseHttpUrl(name: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return invalidEnv(name, value, 'an absolute http:// or https:// URL such as http://127.0.0.1:4318');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    invalidEnv(name, value, 'an absolute http:// or https:// URL such as http://127.0.0.1:4318');
  }
  return url;
}

/**
 * Parses the W3C Baggage-like list used by `OTEL_RESOURCE_ATTRIBUTES` and
 * `OTEL_EXPORTER_OTLP_HEADERS`: `key1=value1,key2=value2`, values percent-encoded.
 * Duplicate keys keep the last value, as the specification allows.
 */
export function parseKeyValueList(name: string, value: string | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  if (value === undefined) return result;
  if (value.length > MAX_LIST_LENGTH) invalidEnv(name, `${value.slice(0, 40)}...`, `at most ${MAX_LIST_LENGTH} characters`);

  for (const item of value.split(',')) {
    const trimmed = item.trim();
    if (trimmed === '') continue;
    const equals = trimmed.indexOf('=');
    const key = equals === -1 ? '' : trimmed.slice(0, equals).trim();
    if (key === '' || !/^[\x21-\x7e]+$/.test(key)) {
      invalidEnv(name, trimmed, 'comma-separated key=value pairs with non-empty keys, e.g. "deployment.environment=prod"');
    }
    try {
      result[key] = decodeURIComponent(trimmed.slice(equals + 1).trim());
    } catch {
      invalidEnv(name, trimmed, 'values with valid percent-encoding (%20 for a space)');
    }
  }
  return result;
}
