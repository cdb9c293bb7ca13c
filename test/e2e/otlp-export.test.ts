import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { rawRequest, startTestStack } from './support.ts';
import { waitUntil } from '../wait.ts';

t.test('spans are exported over OTLP/HTTP', async (t) => {
  const received: { path: string; contentType: string; body: Buffer }[] = [];
  const collector = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  t.teardown(() => collector.close());

  // The exporter reads the standard variables when the stack starts.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  const stack = await startTestStack({ spanProcessors: [] });
  t.teardown(() => stack.close());
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;

  const response = await rawRequest(stack, '/fhir/Patient', { headers: { accept: 'application/json' } });
  t.equal(response.status, 401);

  await waitUntil(() => received.length > 0);
  t.equal(received[0]?.path, '/v1/traces');
  t.match(received[0]?.contentType, /^application\/(x-protobuf|json)/);
  t.ok(received[0]?.body.includes('GET /*'), 'the export contains the request span, named after its route');
  t.ok(received[0]?.body.includes('wardgate.tls.group'), 'the span carries the TLS group attribute');
  t.ok(received[0]?.body.includes('X25519MLKEM768'), 'the group is the hybrid one');
});
