import t from 'tap';
import { TelemetryError } from '../../proxy/telemetry/errors.ts';
import { rawRequest, startTestStack } from '../e2e/support.ts';
import { eventually, startCollector } from './helpers.ts';

const VARIABLES = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_METRIC_EXPORT_INTERVAL',
  'OTEL_TRACES_SAMPLER',
] as const;

/** Sets `OTEL_*` variables for the start of one stack and restores them afterwards. */
function withEnv(values: Partial<Record<(typeof VARIABLES)[number], string>>): () => void {
  const saved = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]));
  for (const name of VARIABLES) delete process.env[name];
  Object.assign(process.env, values);
  return () => {
    for (const name of VARIABLES) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  };
}

interface JsonSpan {
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}

t.test('standard variables drive a real export', async (t) => {
  const collector = await startCollector(t, 200);
  const restore = withEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-token=test%20token,x-tenant=icu',
    OTEL_SERVICE_NAME: 'wardgate-icu',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,hospital.site=North%20Wing',
    OTEL_METRIC_EXPORT_INTERVAL: '200',
  });
  let stack;
  try {
    stack = await startTestStack({ spanProcessors: [] });
  } finally {
    restore();
  }
  t.teardown(() => stack.close());

  const response = await rawRequest(stack, '/fhir/Patient/p-0042', { headers: { accept: 'application/json', 'user-agent': 'export-test' } });
  t.equal(response.status, 401);

  const traces = () => collector.requests.filter((request) => request.path === '/v1/traces');
  t.ok(await eventually(() => traces().length > 0), 'spans reached the collector');
  t.ok(await eventually(() => collector.requests.some((request) => request.path === '/v1/metrics')), 'metrics reached the collector');

  const export_ = traces()[0]!;
  t.match(export_.contentType, /^application\/json/, 'http/json sends JSON');
  t.equal(export_.headers['x-collector-token'], 'test token', 'OTEL_EXPORTER_OTLP_HEADERS values are decoded and sent');
  t.equal(export_.headers['x-tenant'], 'icu');

  const body = JSON.parse(export_.body.toString('utf8')) as {
    resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: JsonSpan[] }[] }[];
  };
  const resource = Object.fromEntries(body.resourceSpans[0]!.resource.attributes.map((attribute) => [attribute.key, attribute.value.stringValue]));
  t.equal(resource['service.name'], 'wardgate-icu');
  t.equal(resource['deployment.environment'], 'test');
  t.equal(resource['hospital.site'], 'North Wing');

  const spans = body.resourceSpans.flatMap((resourceSpans) => resourceSpans.scopeSpans.flatMap((scope) => scope.spans));
  const server = spans.find((span) => span.kind === 2);
  t.equal(server?.name, 'GET /*');
  const attributes = Object.fromEntries((server?.attributes ?? []).map((attribute) => [attribute.key, attribute.value.stringValue ?? attribute.value.intValue]));
  t.match(String(attributes['url.path']), /^\/fhir\/Patient\/~[0-9a-f]{32}$/);
  t.equal(attributes['user_agent.original'], 'export-test');
  t.notMatch(export_.body.toString('utf8'), 'p-0042', 'the clear patient id never reaches the collector');
});

t.test('grpc protocol stops start-up', async (t) => {
  const restore = withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' });
  try {
    await t.rejects(startTestStack(), { name: 'TelemetryError', code: 'WG_TELEMETRY_INVALID_ENV', setting: 'OTEL_EXPORTER_OTLP_PROTOCOL', message: /"grpc"/ });
  } finally {
    restore();
  }
});

t.test('invalid sampler stops start-up', async (t) => {
  const restore = withEnv({ OTEL_TRACES_SAMPLER: 'sometimes' });
  try {
    const error = await startTestStack().then(
      (stack) => stack.close().then(() => null),
      (caught: unknown) => caught,
    );
    t.ok(error instanceof TelemetryError, 'start-up fails with a telemetry error');
    t.match((error as Error).message, /OTEL_TRACES_SAMPLER is invalid: expected one of always_on/);
  } finally {
    restore();
  }
});
