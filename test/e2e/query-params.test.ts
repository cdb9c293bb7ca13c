import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { Browser, rawRequest, signIn, startTestStack, waitForSpan, type TestStack } from './support.ts';

// A real policy file, loaded and compiled as in production: name searches on Patient and a
// WebSocket upgrade that carries a `token` parameter are blocked, everything else is allowed.
const POLICY = `version: 1
rules:
  - id: demographic-search
    when: 'request.path == "/fhir/Patient" && request.query_params.exists(p, p in ["name", "family", "given", "birthdate", "phone", "telecom", "address", "identifier"])'
    action: block
  - id: socket-token
    when: 'request.path == "/ws" && "token" in request.query_params'
    action: block
  - id: allow-rest
    action: allow
`;

const policyDir = mkdtempSync(join(tmpdir(), 'wgtest-query-params-'));
const policyFile = join(policyDir, 'search.yaml');
writeFileSync(policyFile, POLICY);

let stack: TestStack;
let cookie: string;

t.before(async () => {
  stack = await startTestStack({ policyFile });
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
});
t.teardown(async () => {
  await stack.close();
  rmSync(policyDir, { recursive: true, force: true });
});

/** Requests `path` with the physician's session and returns the status and the rule that decided it. */
async function ruleFor(path: string): Promise<{ status: number; rule: unknown }> {
  stack.spans.reset();
  const response = await rawRequest(stack, path, { headers: { cookie, accept: 'application/fhir+json' } });
  const span = await waitForSpan(stack, (candidate) => candidate.attributes['wardgate.rule'] !== undefined);
  return { status: response.status, rule: span.attributes['wardgate.rule'] };
}

t.test('name searches decided by query params', async (t) => {
  const byName = await ruleFor('/fhir/Patient?family=Smith&given=Ann');
  t.equal(byName.status, 403);
  t.equal(byName.rule, 'demographic-search');

  const byModifier = await ruleFor('/fhir/Patient?name%3Acontains=Smi');
  t.equal(byModifier.status, 403, 'the modifier is stripped before the policy sees the name');
  t.equal(byModifier.rule, 'demographic-search');

  const byId = await ruleFor('/fhir/Patient?_id=p-0001');
  t.not(byId.status, 403, 'a search by id is forwarded');
  t.equal(byId.rule, 'allow-rest');

  const read = await ruleFor('/fhir/Patient/p-0001');
  t.equal(read.status, 200);
  t.equal(read.rule, 'allow-rest');
});

/** Sends a WebSocket upgrade for `target` with the physician's session and returns the status line. */
async function upgrade(target: string): Promise<string> {
  const { port } = new URL(stack.url);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: stack.certificates.ca.cert });
  t.teardown(() => socket.destroy());
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const key = randomBytes(16).toString('base64');
  socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nCookie: ${cookie}\r\n\r\n`);

  const chunk = await new Promise<Buffer>((resolve, reject) => socket.once('data', resolve).once('error', reject).once('end', () => resolve(Buffer.alloc(0))));
  return chunk.toString().split('\r\n')[0] ?? '';
}

t.test('upgrade requests carry query params', async (t) => {
  t.match(await upgrade('/ws?token=abc'), /^HTTP\/1\.1 403 /);
  t.match(await upgrade('/ws?room=7'), /^HTTP\/1\.1 101 /);
});
