import { connect } from 'node:tls';
import t from 'tap';
import { rawRequest, startTestStack } from './support.ts';

// Request hygiene through the whole listener: methods that echo or tunnel are refused, and a
// request with doubtful framing closes its connection.
const stack = await startTestStack();
t.teardown(() => stack.close());

t.test('TRACE is refused before routing', async (t) => {
  const response = await rawRequest(stack, '/debug/headers', { method: 'TRACE', headers: { accept: 'application/json', cookie: 'app_session=secret' } });
  t.equal(response.status, 405);
  t.match(JSON.parse(response.body), { error: 'WG_HTTP_METHOD_NOT_ALLOWED' });
  t.match(String(response.headers.allow), /GET/);
  t.notMatch(response.body, /secret/, 'the cookie is not echoed');
});

t.test('a method-override header is refused before routing', async (t) => {
  for (const header of ['X-HTTP-Method-Override', 'x-http-method', 'X-Method-Override', 'X_HTTP_Method_Override']) {
    const response = await rawRequest(stack, '/fhir/Patient/p-0001', { method: 'POST', headers: { accept: 'application/json', [header]: 'DELETE' } });
    t.equal(response.status, 400, header);
    t.match(JSON.parse(response.body), { error: 'WG_HTTP_METHOD_OVERRIDE', message: `Header ${header.toLowerCase()} is not accepted by Wardgate, because the policy decides on the method of the request line; send the request with the method itself.` });
  }
  // PHP reads `.`, a space (`+`) and an unclosed `[` in a parameter name as `_`.
  for (const query of ['_method=DELETE', 'a=1&_METHOD=PUT', 'a=1;_method=PATCH', '.method=DELETE', '+method=DELETE', '[method=DELETE', '_method[]=DELETE', 'a[_method]=DELETE', '+_method=DELETE', '_method%00=DELETE']) {
    const response = await rawRequest(stack, `/fhir/Patient/p-0001?${query}`, { method: 'POST', headers: { accept: 'application/json' } });
    t.equal(response.status, 400, query);
    t.match(JSON.parse(response.body), { error: 'WG_HTTP_METHOD_OVERRIDE', message: /^Query parameter .+ is not accepted by Wardgate, because the policy decides on the method of the request line/ }, query);
  }
  const similar = await rawRequest(stack, '/fhir/Observation?method=a&methods=b&x_method=c', { headers: { accept: 'application/json' } });
  t.not(similar.status, 400, 'names that only contain "method" pass');
  const plain = await rawRequest(stack, '/healthz', { headers: { accept: 'application/json' } });
  t.not(plain.status, 400, 'a request without such a header passes the check');
});

t.test('TRACK and CONNECT never reach the upstream', async (t) => {
  // Node's parser rejects TRACK with 400 itself and hands CONNECT to a "connect" listener,
  // which Wardgate does not install, so the connection is closed.
  const track = await rawRequest(stack, '/debug/headers', { method: 'TRACK', headers: { accept: 'application/json' } });
  t.equal(track.status, 400);
  t.notMatch(track.body, /rawHeaders/, 'the upstream did not answer');
  await t.rejects(rawRequest(stack, '/', { method: 'CONNECT' }), { message: /socket hang up/ }, 'CONNECT gets no tunnel');
});

t.test('a request with a transfer coding before chunked gets 400 and the connection closes', async (t) => {
  const port = new URL(stack.url).port;
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert }, () => {
      socket.write(`POST /notes HTTP/1.1\r\nHost: localhost:${port}\r\nAccept: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
  t.match(reply, /^HTTP\/1\.1 400 /);
  t.match(reply, /\r\nconnection: close\r\n/i);
  t.match(reply, /WG_HTTP_AMBIGUOUS_FRAMING/);
  t.equal(reply.match(/HTTP\/1\.1 \d{3}/g)?.length, 1, 'the request smuggled behind it got no response');
});

t.test('a kept-form link without exactly one id says so', async (t) => {
  for (const query of ['', '?id=', '?id=a&id=b']) {
    const response = await rawRequest(stack, `/.wardgate/replay${query}`, { headers: { accept: 'application/json' } });
    t.equal(response.status, 403, `query ${JSON.stringify(query)}`);
    t.match(response.body, /must appear exactly once with a value/);
  }
});

/** Sends one GET with the given Host header over TLS and returns the raw response text. */
function getWithHost(host: string, path = '/debug/headers', accept = 'application/json'): Promise<string> {
  const port = new URL(stack.url).port;
  return new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAccept: ${accept}\r\nConnection: close\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

t.test('IPv6 literal Host headers are routed', async (t) => {
  const port = new URL(stack.url).port;
  for (const host of [`[::1]:${port}`, '[::1]', `[::ffff:127.0.0.1]:${port}`, '[::FFFF:127.0.0.1]']) {
    const reply = await getWithHost(host);
    t.match(reply, /^HTTP\/1\.1 401 /, `${host} reaches the route and its sign-in check`);
    t.match(reply, /WG_AUTH_TOKEN_MISSING/, `${host} gets the route's challenge`);
  }
});

t.test('invalid IPv6 literal Host gets 400', async (t) => {
  for (const host of ['[::1', '[:::::]', '[1::2::3]', '[fe80::1%eth0]', '[12345::1]']) {
    const reply = await getWithHost(host);
    t.match(reply, /^HTTP\/1\.1 400 /, `${host} is rejected`);
    t.match(reply, /WG_HTTP_BAD_HOST/, `${host} is named a bad host`);
  }
});

t.test('sign-in redirect_uri uses only known hosts', async (t) => {
  const port = new URL(stack.url).port;
  for (const host of [`localhost:${port}`, `ehr.localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
    const reply = await getWithHost(host, '/.wardgate/login', 'text/html');
    t.match(reply, /^HTTP\/1\.1 302 /, `${host} is sent to the IdP`);
    t.match(reply, new RegExp(`redirect_uri=${encodeURIComponent(`https://${host}/`).replace(/[.[\]]/g, '\\$&')}`), `${host} is the redirect_uri host`);
  }
});

t.test('sign-in from an unknown Host gets 400', async (t) => {
  for (const [host, path] of [['evil.example', '/.wardgate/login'], ['evil.example:443', '/.wardgate/login'], ['localhost.evil.example', '/chart']]) {
    const reply = await getWithHost(host!, path, 'text/html');
    t.match(reply, /^HTTP\/1\.1 400 /, `${host} on ${path} is rejected`);
    t.notMatch(reply, /\r\nlocation:/i, `${host} on ${path} is not redirected`);
    t.notMatch(reply, /redirect_uri=/, `${host} on ${path} is not sent to the IdP`);
    t.match(reply, /evil\.example/, `the response names ${host}`);
  }
});
