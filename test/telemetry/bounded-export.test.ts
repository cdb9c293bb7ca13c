import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { startTelemetry } from '../../proxy/telemetry/telemetry.ts';
import { rawRequest, startTestStack } from '../e2e/support.ts';
import { eventually, startCollector, TestMetricReader } from './helpers.ts';

const DROPPED = 'wardgate.telemetry.dropped';

t.test('silent collector keeps the queue bounded', async (t) => {
  // A collector that accepts connections and never responds.
  const sockets: Socket[] = [];
  let open = 0;
  let maxOpen = 0;
  const silent = createServer((socket) => {
    sockets.push(socket);
    open++;
    maxOpen = Math.max(maxOpen, open);
    socket.on('error', () => {});
    socket.on('close', () => open--);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });

  const reader = new TestMetricReader();
  const telemetry = await startTelemetry({
    env: {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/v1/traces`,
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10',
      OTEL_BSP_EXPORT_TIMEOUT: '200',
    },
    extraMetricReaders: [reader],
  });
  t.teardown(() => telemetry.shutdown());
  const processor = telemetry.tracing.otlpProcessor!;
  t.ok(processor, 'traces go through the bounded processor');
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  telemetry.attachLogger(pino({ level: 'warn' }, destination));

  let maxQueue = 0;
  const spans = 5000;
  for (let index = 0; index < spans; index++) {
    telemetry.tracer.startSpan(`span ${index}`).end();
    maxQueue = Math.max(maxQueue, processor.queueLength);
  }

  t.ok(maxQueue <= 100, `the queue never passed its bound of 100 (max ${maxQueue})`);
  const queueFull = await reader.counterSum(DROPPED, { 'wardgate.telemetry.signal': 'traces', 'wardgate.telemetry.reason': 'queue_full' });
  // At most one batch is in flight and 100 spans wait, so everything else was dropped.
  t.ok(queueFull >= spans - 100 - 10, `spans beyond the bound are counted as dropped (${queueFull})`);

  const timedOut = await eventually(async () => (await reader.counterSum(DROPPED, { 'wardgate.telemetry.reason': 'export_timeout' })) > 0);
  t.ok(timedOut, 'the unanswered export is abandoned and its batch counted');
  t.ok(await eventually(() => sockets.length >= 1), 'the exporter did connect to the collector');
  t.equal(lines.length, 1, 'thousands of drops give one log line a minute');
  t.match(JSON.parse(lines[0] ?? '{}'), { level: 40, dropped: { 'traces.queue_full': Number }, msg: /check that the OTLP collector is reachable/ });
  t.ok(maxOpen <= 4, `abandoned exports are closed, so few connections are open at once (max ${maxOpen})`);
});

t.test('collector answering 503 drops every span', async (t) => {
  const collector = await startCollector(t, 503);
  const reader = new TestMetricReader();
  const telemetry = await startTelemetry({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_MAX_QUEUE_SIZE: '50',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10',
      OTEL_BSP_EXPORT_TIMEOUT: '300',
      OTEL_METRICS_EXPORTER: 'none',
    },
    extraMetricReaders: [reader],
  });
  t.teardown(() => telemetry.shutdown());

  for (let index = 0; index < 30; index++) telemetry.tracer.startSpan(`span ${index}`).end();
  await telemetry.tracing.otlpProcessor!.forceFlush();

  t.ok(collector.requests.length >= 1, 'the collector was asked');
  t.equal(collector.requests[0]?.path, '/v1/traces');
  t.equal(telemetry.tracing.otlpProcessor!.queueLength, 0, 'nothing stays queued');
  const failed = await reader.counterSum(DROPPED, { 'wardgate.telemetry.signal': 'traces', 'wardgate.telemetry.reason': 'export_failed' });
  const timedOut = await reader.counterSum(DROPPED, { 'wardgate.telemetry.signal': 'traces', 'wardgate.telemetry.reason': 'export_timeout' });
  t.equal(failed + timedOut, 30, 'every span is counted as dropped exactly once');
});

t.test('metric export to a failing collector counts drops', async (t) => {
  const collector = await startCollector(t, 503);
  const reader = new TestMetricReader();
  const telemetry = await startTelemetry({
    env: { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${collector.url}/v1/metrics`, OTEL_EXPORTER_OTLP_TIMEOUT: '300', OTEL_TRACES_EXPORTER: 'none' },
    extraMetricReaders: [reader],
  });
  t.teardown(() => telemetry.shutdown());

  telemetry.metrics.recordRequest('allow', 'ehr');
  telemetry.metrics.recordRisk(0.4, 'ehr');
  await telemetry.metrics.forceFlush();

  t.ok(collector.requests.some((request) => request.path === '/v1/metrics'), 'the metrics were sent');
  t.ok((await reader.counterSum(DROPPED, { 'wardgate.telemetry.signal': 'metrics' })) >= 2, 'the lost data points are counted');
});

t.test('working collector drops nothing', async (t) => {
  const collector = await startCollector(t, 200);
  const reader = new TestMetricReader();
  const telemetry = await startTelemetry({
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_METRICS_EXPORTER: 'none' },
    extraMetricReaders: [reader],
  });
  t.teardown(() => telemetry.shutdown());

  for (let index = 0; index < 25; index++) telemetry.tracer.startSpan(`span ${index}`).end();
  await telemetry.tracing.otlpProcessor!.forceFlush();

  t.ok(collector.requests.length >= 1);
  t.equal(await reader.counterSum(DROPPED), 0);
});

t.test('unsampled spans are not queued', async (t) => {
  const collector = await startCollector(t, 200);
  const telemetry = await startTelemetry({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_TRACES_SAMPLER: 'always_off', OTEL_METRICS_EXPORTER: 'none' } });
  t.teardown(() => telemetry.shutdown());

  const span = telemetry.tracer.startSpan('unsampled');
  span.end();

  t.match(span.spanContext().traceId, /^[0-9a-f]{32}$/, 'an unsampled span still has a trace id for the incident id');
  t.not(span.spanContext().traceId, '0'.repeat(32));
  t.equal(telemetry.tracing.otlpProcessor!.queueLength, 0);
});

t.test('requests pass while the collector is silent', async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });

  const variables = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
    OTEL_BSP_MAX_QUEUE_SIZE: '5',
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '5',
    OTEL_BSP_EXPORT_TIMEOUT: '500',
    OTEL_METRICS_EXPORTER: 'none',
  };
  Object.assign(process.env, variables);
  const reader = new TestMetricReader();
  let stack;
  try {
    stack = await startTestStack({ spanProcessors: [], metricReaders: [reader] });
  } finally {
    for (const name of Object.keys(variables)) delete process.env[name];
  }
  t.teardown(() => stack.close());

  const statuses: number[] = [];
  for (let index = 0; index < 40; index++) {
    statuses.push((await rawRequest(stack, `/fhir/Patient/p-${index}`, { headers: { accept: 'application/json' } })).status);
  }

  t.same(new Set(statuses), new Set([401]), 'every request got its normal answer');
  // Requests are counted when the server finishes the response, which may come after the client has read it.
  t.ok(await eventually(async () => (await reader.counterSum('wardgate.requests')) === 40), 'every request was counted');
  // The collector never accepts a span, so each of the 40 server spans is dropped (queue full
  // or export timed out) except at most 5 queued and 5 in flight.
  t.ok(await eventually(async () => (await reader.counterSum(DROPPED, { 'wardgate.telemetry.signal': 'traces' })) >= 30), 'spans that cannot be exported are counted as dropped');
});
