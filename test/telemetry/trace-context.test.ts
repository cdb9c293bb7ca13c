import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import t, { type Test } from 'tap';
import { demoRoutes } from '../../demo/demo-stack.ts';
import { PatientPathRedactor } from '../../proxy/telemetry/patient-redaction.ts';
import { Browser, rawRequest, signIn, startTestStack, type TestStack } from '../e2e/support.ts';
import { eventually } from './helpers.ts';

const CLIENT_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN_ID = '00f067aa0ba902b7';
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-01`;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

interface Upstream {
  readonly url: string;
  readonly received: IncomingHttpHeaders[];
  readonly server: Server;
}

/** Starts an upstream that records the headers it receives and responds with 200, or 101 to an upgrade. */
async function startUpstream(t: Test): Promise<Upstream> {
  const received: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    received.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  server.on('upgrade', (req, socket) => {
    received.push(req.headers);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

async function sessionCookie(stack: TestStack): Promise<string> {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  return `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
}

async function spansOfTrace(stack: TestStack, traceId: string, count: number): Promise<ReadableSpan[]> {
  const find = () => stack.spans.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
  await eventually(() => find().length >= count);
  return find();
}

function serverSpan(spans: ReadableSpan[]): ReadableSpan | undefined {
  return spans.find((span) => span.kind === SpanKind.SERVER);
}

function clientSpan(spans: ReadableSpan[]): ReadableSpan | undefined {
  return spans.find((span) => span.kind === SpanKind.CLIENT);
}

t.test('untrusted client', async (t) => {
  const upstream = await startUpstream(t);
  const stack = await startTestStack({ routes: () => demoRoutes(upstream.url) });
  t.teardown(() => stack.close());
  const cookie = await sessionCookie(stack);

  t.test('traceparent starts a new trace', async (t) => {
    upstream.received.length = 0;
    const response = await rawRequest(stack, '/fhir/Patient/p-0001?_format=json', {
      headers: { cookie, accept: 'application/json', traceparent: CLIENT_TRACEPARENT, tracestate: 'attacker=1', 'user-agent': 'trace-test/1.0' },
    });

    t.equal(response.status, 200);
    const sent = upstream.received[0]?.traceparent as string | undefined;
    const match = TRACEPARENT.exec(sent ?? '');
    t.ok(match, `the upstream receives a valid traceparent (${sent})`);
    t.not(match?.[1], CLIENT_TRACE_ID, 'the client trace id is not forwarded');
    t.equal(upstream.received[0]?.tracestate, undefined, 'the client tracestate is not forwarded');

    const spans = await spansOfTrace(stack, match![1]!, 2);
    const server = serverSpan(spans);
    const client = clientSpan(spans);
    t.ok(server, 'the server span is in the new trace');
    t.equal(server?.parentSpanContext, undefined, 'the server span is a root span');
    t.equal(client?.parentSpanContext?.spanId, server?.spanContext().spanId, 'the upstream span is a child of the server span');
    t.equal(match?.[2], client?.spanContext().spanId, 'the upstream traceparent carries the client span id');
    t.equal(client?.attributes['http.response.status_code'], 200);
    t.equal(client?.attributes['server.address'], '127.0.0.1');
    t.equal(client?.attributes['server.port'], Number(new URL(upstream.url).port));
    t.equal(client?.name, 'GET');
  });

  t.test('server span follows HTTP conventions', async (t) => {
    stack.spans.reset();
    const response = await rawRequest(stack, '/fhir/Observation?patient=p-0002&code=8867-4', {
      headers: { cookie, accept: 'application/json', 'user-agent': 'trace-test/1.0' },
    });

    t.equal(response.status, 200);
    const incident = TRACEPARENT.exec(String(upstream.received.at(-1)?.traceparent))?.[1] ?? '';
    const span = serverSpan(await spansOfTrace(stack, incident, 2));
    const pseudonym = new PatientPathRedactor(stack.config.patient_key).pseudonym('p-0002');
    const port = Number(new URL(stack.url).port);
    t.equal(span?.name, 'GET /*');
    t.equal(span?.attributes['http.request.method'], 'GET');
    t.equal(span?.attributes['http.route'], '/*');
    t.equal(span?.attributes['url.scheme'], 'https');
    t.equal(span?.attributes['url.path'], '/fhir/Observation');
    t.equal(span?.attributes['url.query'], `patient=${pseudonym}&code=8867-4`, 'the patient id in the query is a pseudonym');
    t.equal(span?.attributes['server.address'], 'localhost');
    t.equal(span?.attributes['server.port'], port);
    t.equal(span?.attributes['client.address'], '127.0.0.1');
    t.equal(span?.attributes['user_agent.original'], 'trace-test/1.0');
    t.equal(span?.attributes['network.protocol.version'], '1.1');
    t.equal(span?.attributes['http.response.status_code'], 200);
    t.equal(span?.attributes['wardgate.route'], 'ehr');
    t.equal(span?.attributes['wardgate.decision'], 'allow');
    t.equal(span?.attributes['wardgate.auth.method'], 'session');
    t.equal(span?.attributes['wardgate.fail_mode.decided'], false);
    t.equal(span?.attributes['tls.protocol.version'], 'TLSv1.3');
    t.equal(span?.attributes['wardgate.tls.group'], 'X25519MLKEM768');
    t.type(span?.attributes['wardgate.risk'], 'number');
    t.type(span?.attributes['wardgate.rule'], 'string');
    t.ok(Array.isArray(span?.attributes['wardgate.top_features']), 'the top features are recorded');
    const everything = JSON.stringify(stack.spans.getFinishedSpans().map((candidate) => candidate.attributes));
    t.notMatch(everything, 'p-0002', 'no span attribute carries the clear patient id');
  });

  t.test('WebSocket handshake gets a client span', async (t) => {
    upstream.received.length = 0;
    const { port } = new URL(stack.url);
    const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
    t.teardown(() => socket.destroy());
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const key = randomBytes(16).toString('base64');
    socket.write(`GET /ws HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nCookie: ${cookie}\r\ntraceparent: ${CLIENT_TRACEPARENT}\r\n\r\n`);
    const head = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
    socket.destroy();

    t.match(head, /^HTTP\/1\.1 101 /);
    const match = TRACEPARENT.exec(String(upstream.received[0]?.traceparent));
    t.ok(match, 'the upstream receives a valid traceparent');
    t.not(match?.[1], CLIENT_TRACE_ID, 'the untrusted client trace id is not forwarded');
    const spans = await spansOfTrace(stack, match![1]!, 2);
    const server = serverSpan(spans);
    const client = clientSpan(spans);
    t.equal(client?.parentSpanContext?.spanId, server?.spanContext().spanId, 'the handshake span is a child of the server span');
    t.equal(match?.[2], client?.spanContext().spanId, 'the upstream traceparent carries the client span id');
    t.equal(client?.attributes['http.response.status_code'], 101);
  });

  t.test('upstream failure ends the client span with an error', async (t) => {
    stack.spans.reset();
    upstream.server.closeAllConnections();
    await new Promise<void>((resolve) => upstream.server.close(() => resolve()));
    const response = await rawRequest(stack, '/fhir/Patient', { headers: { cookie, accept: 'application/json' } });

    t.equal(response.status, 502);
    await eventually(() => stack.spans.getFinishedSpans().some((span) => span.kind === SpanKind.CLIENT));
    const client = clientSpan(stack.spans.getFinishedSpans());
    t.equal(client?.status.code, SpanStatusCode.ERROR);
    t.equal(client?.attributes['error.type'], 'ECONNREFUSED');
    t.equal(client?.attributes['http.response.status_code'], undefined, 'no status without a response');
  });
});

t.test('trusted hop', async (t) => {
  const upstream = await startUpstream(t);
  const stack = await startTestStack({ routes: () => demoRoutes(upstream.url), telemetry: { trusted_hops: ['127.0.0.0/8'], prometheus: null } });
  t.teardown(() => stack.close());
  const cookie = await sessionCookie(stack);

  t.test('traceparent continues the trace', async (t) => {
    upstream.received.length = 0;
    const response = await rawRequest(stack, '/fhir/Patient', {
      headers: { cookie, accept: 'application/json', traceparent: CLIENT_TRACEPARENT, tracestate: 'lb=7' },
    });

    t.equal(response.status, 200);
    const match = TRACEPARENT.exec(String(upstream.received[0]?.traceparent));
    t.equal(match?.[1], CLIENT_TRACE_ID, 'the upstream request stays in the client trace');

    const spans = await spansOfTrace(stack, CLIENT_TRACE_ID, 2);
    const server = serverSpan(spans);
    const client = clientSpan(spans);
    t.equal(server?.parentSpanContext?.spanId, CLIENT_SPAN_ID, 'the server span is a child of the incoming span');
    t.equal(client?.parentSpanContext?.spanId, server?.spanContext().spanId);
    t.equal(match?.[2], client?.spanContext().spanId, 'the upstream traceparent carries the client span id');
    t.equal(upstream.received[0]?.tracestate, 'lb=7', 'the trusted tracestate travels with the trace');
  });

  t.test('malformed traceparent starts a new trace', async (t) => {
    upstream.received.length = 0;
    const response = await rawRequest(stack, '/fhir/Patient', { headers: { cookie, accept: 'application/json', traceparent: '00-zz-00-01' } });

    t.equal(response.status, 200);
    const match = TRACEPARENT.exec(String(upstream.received[0]?.traceparent));
    t.ok(match, 'the upstream receives a valid traceparent');
    t.not(match?.[1], CLIENT_TRACE_ID);
  });
});
