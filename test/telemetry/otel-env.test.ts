import t from 'tap';
import { TelemetryError } from '../../proxy/telemetry/errors.ts';
import { parseKeyValueList, parseOtelEnv } from '../../proxy/telemetry/otel-env.ts';

function invalid(env: NodeJS.ProcessEnv): TelemetryError {
  try {
    parseOtelEnv(env);
  } catch (error) {
    if (error instanceof TelemetryError) return error;
    throw error;
  }
  throw new Error(`parseOtelEnv accepted ${JSON.stringify(env)}`);
}

t.test('defaults without variables', async (t) => {
  const settings = parseOtelEnv({});

  t.equal(settings.disabled, false);
  t.equal(settings.serviceName, 'wardgate');
  t.same(settings.resourceAttributes, {});
  t.equal(settings.traces, null, 'no endpoint means no trace export');
  t.equal(settings.metrics, null, 'no endpoint means no metric export');
  t.same(settings.sampler, { name: 'parentbased_always_on', ratio: 1 });
  t.same(settings.batch, { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMs: 1000, exportTimeoutMs: 10_000 });
});

t.test('base endpoint gets signal paths', async (t) => {
  const settings = parseOtelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' });

  t.equal(settings.traces?.url, 'http://collector:4318/v1/traces');
  t.equal(settings.metrics?.url, 'http://collector:4318/v1/metrics');
  t.equal(settings.traces?.protocol, 'http/protobuf');
});

t.test('base endpoint with a path keeps it', async (t) => {
  const settings = parseOtelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://gateway.example/otlp/' });

  t.equal(settings.traces?.url, 'https://gateway.example/otlp/v1/traces');
});

t.test('signal endpoints are used as given', async (t) => {
  const settings = parseOtelEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://metrics:9998/m',
  });

  t.equal(settings.traces?.url, 'http://traces:9999/custom');
  t.equal(settings.metrics?.url, 'http://metrics:9998/m');
});

t.test('protocol, headers and timeout per signal', async (t) => {
  const settings = parseOtelEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc, x-tenant = icu',
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=radiology',
    OTEL_EXPORTER_OTLP_TIMEOUT: '5000',
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '2500',
  });

  t.equal(settings.traces?.protocol, 'http/json');
  t.equal(settings.metrics?.protocol, 'http/protobuf');
  t.same(settings.traces?.headers, { authorization: 'Bearer abc', 'x-tenant': 'radiology' });
  t.same(settings.metrics?.headers, { authorization: 'Bearer abc', 'x-tenant': 'icu' });
  t.equal(settings.traces?.timeoutMs, 5000);
  t.equal(settings.metrics?.timeoutMs, 2500);
});

t.test('service name and resource attributes', async (t) => {
  const fromResource = parseOtelEnv({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=edge-a,deployment.environment=prod,ward=ICU%203' });
  t.equal(fromResource.serviceName, 'edge-a');
  t.same(fromResource.resourceAttributes, { 'service.name': 'edge-a', 'deployment.environment': 'prod', ward: 'ICU 3' });

  const overridden = parseOtelEnv({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=edge-a', OTEL_SERVICE_NAME: 'wardgate-icu' });
  t.equal(overridden.serviceName, 'wardgate-icu', 'OTEL_SERVICE_NAME wins over the resource attribute');
});

t.test('samplers and their argument', async (t) => {
  t.same(parseOtelEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).sampler, { name: 'traceidratio', ratio: 0.25 });
  t.same(parseOtelEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }).sampler, { name: 'parentbased_traceidratio', ratio: 0 });
  t.same(parseOtelEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).sampler, { name: 'always_off', ratio: 1 });
  t.same(parseOtelEnv({ OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: 'ignored' }).sampler, { name: 'always_on', ratio: 1 }, 'the argument only matters for ratio samplers');
});

t.test('SDK disabled exports nothing', async (t) => {
  const settings = parseOtelEnv({ OTEL_SDK_DISABLED: 'TRUE', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' });

  t.equal(settings.disabled, true);
  t.equal(settings.traces, null);
  t.equal(settings.metrics, null);
});

t.test('exporter none turns one signal off', async (t) => {
  const settings = parseOtelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_METRICS_EXPORTER: 'none' });

  t.not(settings.traces, null);
  t.equal(settings.metrics, null);
});

t.test('empty variables count as unset', async (t) => {
  const settings = parseOtelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_SERVICE_NAME: ' ', OTEL_TRACES_SAMPLER: '' });

  t.equal(settings.traces, null);
  t.equal(settings.serviceName, 'wardgate');
  t.equal(settings.sampler.name, 'parentbased_always_on');
});

t.test('grpc fails with the supported protocols', async (t) => {
  const error = invalid({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317' });

  t.equal(error.code, 'WG_TELEMETRY_INVALID_ENV');
  t.equal(error.setting, 'OTEL_EXPORTER_OTLP_PROTOCOL');
  t.match(error.message, /"grpc"/);
  t.match(error.message, /"http\/protobuf" or "http\/json"/);
});

const hostile: Array<[string, NodeJS.ProcessEnv, string, RegExp]> = [
  ['unknown protocol', { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/xml' }, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', /received "http\/xml"/],
  ['endpoint without scheme', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT', /http:\/\/ or https:\/\//],
  ['endpoint not a URL', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', /received "not a url"/],
  ['ftp endpoint', { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'ftp://collector/' }, 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', /received "ftp:\/\/collector\/"/],
  ['unknown sampler', { OTEL_TRACES_SAMPLER: 'jaeger_remote' }, 'OTEL_TRACES_SAMPLER', /one of always_on, always_off/],
  ['ratio above one', { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG', /from 0 to 1/],
  ['ratio not a number', { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' }, 'OTEL_TRACES_SAMPLER_ARG', /received "half"/],
  ['negative ratio', { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '-0.1' }, 'OTEL_TRACES_SAMPLER_ARG', /received "-0.1"/],
  ['disabled not boolean', { OTEL_SDK_DISABLED: 'yes' }, 'OTEL_SDK_DISABLED', /"true" or "false", received "yes"/],
  ['header without equals', { OTEL_EXPORTER_OTLP_HEADERS: 'authorization' }, 'OTEL_EXPORTER_OTLP_HEADERS', /key=value/],
  ['header with empty key', { OTEL_EXPORTER_OTLP_HEADERS: '=value' }, 'OTEL_EXPORTER_OTLP_HEADERS', /non-empty keys/],
  ['bad percent-encoding', { OTEL_RESOURCE_ATTRIBUTES: 'ward=ICU%ZZ' }, 'OTEL_RESOURCE_ATTRIBUTES', /percent-encoding/],
  ['timeout not an integer', { OTEL_EXPORTER_OTLP_TIMEOUT: '10s' }, 'OTEL_EXPORTER_OTLP_TIMEOUT', /integer from 1 to 600000, received "10s"/],
  ['zero queue size', { OTEL_BSP_MAX_QUEUE_SIZE: '0' }, 'OTEL_BSP_MAX_QUEUE_SIZE', /integer from 1/],
  ['batch above queue', { OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '20' }, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', /no larger than OTEL_BSP_MAX_QUEUE_SIZE \(10\)/],
  ['unknown exporter', { OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER', /"otlp" or "none", received "zipkin"/],
];

for (const [name, env, setting, message] of hostile) {
  t.test(`invalid env: ${name}`, async (t) => {
    const error = invalid(env);

    t.equal(error.code, 'WG_TELEMETRY_INVALID_ENV');
    t.equal(error.setting, setting);
    t.match(error.message, new RegExp(`^Environment variable ${setting} `));
    t.match(error.message, message);
  });
}

t.test('oversized list is rejected', async (t) => {
  t.throws(() => parseKeyValueList('OTEL_RESOURCE_ATTRIBUTES', `a=${'x'.repeat(9000)}`), { code: 'WG_TELEMETRY_INVALID_ENV', message: /at most 8192 characters/ });
});

t.test('duplicate keys keep the last value', async (t) => {
  t.same(parseKeyValueList('OTEL_RESOURCE_ATTRIBUTES', 'ward=a,ward=b'), { ward: 'b' });
});
