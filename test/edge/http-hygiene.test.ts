import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

import t from 'tap';

import { HttpError, checkFraming, normalizePath, setForwardedHeaders, stripHopByHopHeaders, stripIdentityHeaders } from '../../proxy/http/index.ts';

t.test('normalizePath normalizes paths', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['/', '/', ''],
    ['/fhir/Patient', '/fhir/Patient', ''],
    ['/fhir/Patient?name=test&_count=5', '/fhir/Patient', 'name=test&_count=5'],
    ['/a//b///c', '/a/b/c', ''],
    ['//a', '/a', ''],
    ['/a/./b', '/a/b', ''],
    ['/a/../b', '/b', ''],
    ['/a/b/..', '/a/', ''],
    ['/a/b/.', '/a/b/', ''],
    ['/../../etc/passwd', '/etc/passwd', ''],
    ['/a/%2e%2e/b', '/b', ''],
    ['/a/%2E%2e/%2e/b', '/b', ''],
    ['/a/.%2e/b', '/b', ''],
    ['/%66hir/%50atient', '/fhir/Patient', ''],
    ['/a%7eb', '/a~b', ''],
    ['/a%20b', '/a%20b', ''],
    ['/a%c3%a9', '/a%C3%A9', ''],
    ['/fhir/Patient/p-0001/$everything', '/fhir/Patient/p-0001/$everything', ''],
    ['/a/..//b', '/b', ''],
    ['/a?x=/../y', '/a', 'x=/../y'],
    ['/a/', '/a/', ''],
    ['/a%252e%252e/', '/a%252e%252e/', ''],
  ];

  for (const [raw, path, query] of cases) {
    t.same(normalizePath(raw), { path, query }, raw);
  }

  t.same(normalizePath('*', 'OPTIONS'), { path: '*', query: '' });
});

t.test('normalizePath rejects hostile targets', async (t) => {
  const cases: Array<[string, string, string?]> = [
    ['http://ehr.localhost/fhir', 'WG_HTTP_BAD_TARGET'],
    ['ehr.localhost:443', 'WG_HTTP_BAD_TARGET'],
    ['fhir/Patient', 'WG_HTTP_BAD_TARGET'],
    ['', 'WG_HTTP_BAD_TARGET'],
    ['*', 'WG_HTTP_BAD_TARGET', 'GET'],
    [`/${'a'.repeat(8192)}`, 'WG_HTTP_BAD_TARGET'],
    ['/a%2Fb', 'WG_HTTP_BAD_PATH'],
    ['/a%2fb', 'WG_HTTP_BAD_PATH'],
    ['/a%5cb', 'WG_HTTP_BAD_PATH'],
    ['/a\\b', 'WG_HTTP_BAD_PATH'],
    ['/a%00b', 'WG_HTTP_BAD_PATH'],
    ['/a\u0000b', 'WG_HTTP_BAD_PATH'],
    ['/a%0d%0aSet-Cookie:x', 'WG_HTTP_BAD_PATH'],
    ['/a%7f', 'WG_HTTP_BAD_PATH'],
    ['/a\tb', 'WG_HTTP_BAD_PATH'],
    ['/a b', 'WG_HTTP_BAD_PATH'],
    ['/a%', 'WG_HTTP_BAD_PATH'],
    ['/a%2', 'WG_HTTP_BAD_PATH'],
    ['/a%zz', 'WG_HTTP_BAD_PATH'],
    ['/a#frag', 'WG_HTTP_BAD_PATH'],
    ['/caf\u00e9', 'WG_HTTP_BAD_PATH'],
    ['/a?q=\u0001', 'WG_HTTP_BAD_PATH'],
    ['/fhir/Patient?_id=1&#&family=Smith', 'WG_HTTP_BAD_TARGET'],
    ['/fhir/Observation?category=x#&patient=p-0001', 'WG_HTTP_BAD_TARGET'],
  ];

  for (const [raw, code, method] of cases) {
    t.throws(() => normalizePath(raw, method), { code, status: 400 }, JSON.stringify(raw.slice(0, 40)));
  }

  t.throws(() => normalizePath(42 as unknown as string), { code: 'WG_HTTP_BAD_TARGET' });
  t.throws(() => normalizePath('/a%2Fb'), {
    message: 'Request path "/a%2Fb" is invalid: it contains an encoded slash (%2F). Send the path without it.',
  });
});

t.test('normalizePath is idempotent', async (t) => {
  for (const raw of ['/a/%2e%2e/b//c/./d', '/%41%42%43/x%20y', '/a/b/../..', '/x/y/']) {
    const once = normalizePath(raw);
    t.same(normalizePath(once.path), once, raw);
  }
});

/**
 * Sends raw request bytes to a server that runs checkFraming. Returns the status line and the
 * `x-error` code, which is `node` when Node's parser rejected the request before checkFraming ran.
 */
async function sendRaw(port: number, request: string): Promise<[string, string]> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      const response = Buffer.concat(chunks).toString('latin1');
      const code = /\r\nx-error: ([A-Z_]+)\r\n/i.exec(response)?.[1] ?? 'node';
      resolve([response.split('\r\n')[0] ?? '', code]);
    });
  });
}

t.test('framing rejections over raw sockets', async (t) => {
  const server = createServer((req: IncomingMessage, res) => {
    try {
      checkFraming(req);
      res.writeHead(200, { connection: 'close' }).end('ok');
    } catch (error) {
      const httpError = error as HttpError;
      res.writeHead(httpError.status, { connection: 'close', 'x-error': httpError.code }).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;

  const ok = 'HTTP/1.1 200 OK';
  const bad = 'HTTP/1.1 400 Bad Request';
  // The last column records which layer rejects the request in Node 24.21: `node` is llhttp.
  const cases: Array<[string, string, string, string]> = [
    ['plain GET', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', ok, 'node'],
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', bad, 'node'],
    ['duplicate equal Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok', bad, 'node'],
    ['conflicting Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk', bad, 'node'],
    ['duplicate Host', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', bad, 'WG_HTTP_BAD_HOST'],
    ['duplicate equal Host', 'GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n', bad, 'WG_HTTP_BAD_HOST'],
    ['missing Host', 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n', bad, 'node'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-Note: one\r\n two\r\n\r\n', bad, 'node'],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', bad, 'node'],
    ['negative Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', bad, 'node'],
    ['chunked not last', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', bad, 'node'],
    ['gzip before chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', bad, 'WG_HTTP_AMBIGUOUS_FRAMING'],
    ['two Transfer-Encoding headers', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', bad, 'WG_HTTP_AMBIGUOUS_FRAMING'],
    ['plain chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n', ok, 'node'],
  ];

  for (const [name, request, statusLine, layer] of cases) {
    const [status, code] = await sendRaw(port, request);
    t.equal(status, statusLine, `${name}: status`);
    t.equal(code, layer, `${name}: rejected by`);
  }
});

t.test('checkFraming codes on raw headers', async (t) => {
  const request = (rawHeaders: string[], httpVersion = '1.1') => ({ rawHeaders, httpVersion });
  const cases: Array<[string, string[], string]> = [
    ['both framings', ['Host', 'a', 'Content-Length', '1', 'Transfer-Encoding', 'chunked'], 'WG_HTTP_AMBIGUOUS_FRAMING'],
    ['two lengths', ['Host', 'a', 'content-length', '1', 'Content-Length', '1'], 'WG_HTTP_AMBIGUOUS_FRAMING'],
    ['length with sign', ['Host', 'a', 'Content-Length', '+1'], 'WG_HTTP_AMBIGUOUS_FRAMING'],
    ['list length', ['Host', 'a', 'Content-Length', '1, 1'], 'WG_HTTP_AMBIGUOUS_FRAMING'],
    ['two hosts', ['Host', 'a', 'HOST', 'a'], 'WG_HTTP_BAD_HOST'],
    ['no host', ['Accept', '*/*'], 'WG_HTTP_BAD_HOST'],
    ['folded value', ['Host', 'a', 'X-Note', 'one\r\n two'], 'WG_HTTP_OBS_FOLD'],
    ['coding before chunked', ['Host', 'a', 'Transfer-Encoding', 'gzip, chunked'], 'WG_HTTP_AMBIGUOUS_FRAMING'],
    ['identity coding', ['Host', 'a', 'Transfer-Encoding', 'identity'], 'WG_HTTP_AMBIGUOUS_FRAMING'],
  ];

  for (const [name, rawHeaders, code] of cases) {
    t.throws(() => checkFraming(request(rawHeaders)), { code, status: 400 }, name);
  }

  t.doesNotThrow(() => checkFraming(request(['Host', 'a', 'Content-Length', '12'])));
  t.doesNotThrow(() => checkFraming(request(['Host', 'a', 'Transfer-Encoding', 'Chunked'])));
  t.doesNotThrow(() => checkFraming(request([], '1.0')));
});

t.test('stripIdentityHeaders removes every spelling', async (t) => {
  const spellings = [
    'x-wardgate-assertion', 'X-Wardgate-Assertion', 'X_WARDGATE_ASSERTION', 'x-wardgate_assertion',
    'x-wardgate-user', 'X-Wardgate-Trace',
    'x-forwarded-user', 'X_Forwarded_User', 'x-forwarded-email', 'X-FORWARDED-GROUPS', 'x_forwarded_preferred_username',
    'x-auth-request-user', 'X-Auth-Request-Email', 'x_auth_request_access_token',
    'remote-user', 'REMOTE_USER', 'x-remote-user', 'X_Remote_User',
    'x-clinic-identity',
    'X-Original-URL', 'x_original_url', 'X-Rewrite-URL',
    'X-Forwarded-Client-Cert', 'x_forwarded_client_cert',
    'X-SSL-Client-DN', 'X_SSL_CLIENT_VERIFY', 'x-ssl-client-cert', 'X-Client-Cert',
    'X-Amzn-Oidc-Identity', 'x_amzn_oidc_data', 'X-Amzn-Oidc-Accesstoken',
    'X-Ms-Client-Principal', 'X-MS-CLIENT-PRINCIPAL-NAME', 'x_ms_client_principal_id',
    'X-Goog-Authenticated-User-Email', 'x_goog_authenticated_user_id',
    'Cf-Access-Authenticated-User-Email', 'CF_ACCESS_JWT_ASSERTION',
    'X-Userinfo', 'X-Id-Token', 'x_access_token', 'X-Authenticated-User', 'X-Authenticated-Userid', 'Authenticated-User', 'X_Groups',
    'True-Client-IP', 'true_client_ip', 'X-Client-IP',
  ];
  const kept = ['accept', 'x-request-id', 'x-forwarded-for', 'cookie', 'x-remote-address', 'remote-user-agent', 'x-original-method', 'x-client-version', 'x-groups-version'];
  const headers: Record<string, string> = {};
  for (const name of [...spellings, ...kept]) headers[name] = 'forged';

  const removed = stripIdentityHeaders(headers, 'X-Clinic-Identity');

  t.same(removed.sort(), [...spellings].sort());
  t.same(Object.keys(headers).sort(), [...kept].sort());
});

t.test('stripHopByHopHeaders removes Connection and its list', async (t) => {
  const headers: Record<string, string> = {
    Connection: 'close, X-Wardgate-Assertion, x_listed',
    'keep-alive': 'timeout=5',
    TE: 'trailers',
    'Proxy-Authorization': 'Basic Zm9yZ2Vk',
    'proxy_connection': 'keep-alive',
    Upgrade: 'h2c',
    'x-listed': 'hop',
    'x-wardgate-assertion': 'set by Wardgate',
    accept: 'application/json',
  };

  const removed = stripHopByHopHeaders(headers, false);

  t.same(removed.sort(), ['Connection', 'Proxy-Authorization', 'TE', 'Upgrade', 'keep-alive', 'proxy_connection', 'x-listed', 'x-wardgate-assertion'].sort());
  t.same(headers, { accept: 'application/json' });
});

t.test('stripHopByHopHeaders keeps framing headers', async (t) => {
  const headers: Record<string, string> = {
    connection: 'host, content-length, transfer-encoding',
    host: 'ehr.localhost',
    'content-length': '4',
  };

  stripHopByHopHeaders(headers, false);

  t.same(headers, { host: 'ehr.localhost', 'content-length': '4' });
});

t.test('stripHopByHopHeaders keeps a WebSocket upgrade', async (t) => {
  const headers: Record<string, string> = {
    connection: 'Upgrade, x-wardgate-assertion',
    upgrade: 'websocket',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'keep-alive': 'timeout=5',
  };

  stripHopByHopHeaders(headers, true);

  t.same(headers, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' });
});

t.test('setForwardedHeaders replaces client values', async (t) => {
  const headers: Record<string, string | string[]> = {
    'x-forwarded-for': '10.0.0.1, 10.0.0.2',
    'X_Forwarded_Proto': 'http',
    'x-forwarded-host': 'evil.example',
    forwarded: 'for=10.0.0.1;proto=http',
    'x-real-ip': '10.0.0.9',
    'x-forwarded-prefix': '/admin',
    'X-Forwarded-Uri': '/fhir/Patient/p-1',
    'x_forwarded_ssl': 'off',
    'x-script-name': '/admin',
    'x-original-uri': '/admin/users',
    'x-original-method': 'DELETE',
    'x-host': 'evil.example',
    'x-url-scheme': 'http',
    'front-end-https': 'off',
    'client-ip': '10.0.0.3',
    'X-Cluster-Client-IP': '10.0.0.4',
    'cf-connecting-ip': '10.0.0.5',
    'x-scheme': 'http',
    'x-forwarded': 'for=10.0.0.6',
    'forwarded-for': '10.0.0.7',
    accept: 'application/json',
  };

  setForwardedHeaders(headers, { clientIp: '127.0.0.1', proto: 'https', host: 'ehr.localhost:8443' });

  t.same(headers, {
    accept: 'application/json',
    'x-forwarded-for': '127.0.0.1',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'ehr.localhost:8443',
  });
});
