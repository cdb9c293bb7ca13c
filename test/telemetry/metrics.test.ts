import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { atDaytime, Browser, rawRequest, signIn, startTestStack, type TestStack } from '../e2e/support.ts';
import { eventually, TestMetricReader } from './helpers.ts';

function scrape(port: number, path = '/metrics'): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

const folder = mkdtempSync(join(tmpdir(), 'wgtest-telemetry-'));
const policyFile = join(folder, 'policy.yaml');
copyFileSync(new URL('../../policy/examples/demo.yaml', import.meta.url), policyFile);
const reader = new TestMetricReader();
let stack: TestStack;
let cookie: string;

t.before(async () => {
  stack = await startTestStack({ policyFile, metricReaders: [reader], telemetry: { trusted_hops: [], prometheus: { host: '127.0.0.1', port: 0 } } });
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  // The counted decisions must not depend on the hour the tests run.
  atDaytime(stack);
  cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
});
t.teardown(async () => {
  await stack.close();
  rmSync(folder, { recursive: true, force: true });
});

t.test('requests are counted by decision and route', async (t) => {
  const before = await reader.counterSum('wardgate.requests', { 'wardgate.decision': 'allow', 'wardgate.route': 'ehr' });
  const blockedBefore = await reader.counterSum('wardgate.requests', { 'wardgate.decision': 'block', 'wardgate.route': 'ehr' });

  for (let index = 0; index < 3; index++) {
    const response = await rawRequest(stack, '/fhir/Patient', { headers: { cookie, accept: 'application/json' } });
    t.equal(response.status, 200);
  }
  const blocked = await rawRequest(stack, '/fhir/Patient/p-0001/$everything', { headers: { cookie, accept: 'application/json' } });
  t.equal(blocked.status, 403);

  t.ok(await eventually(async () => (await reader.counterSum('wardgate.requests', { 'wardgate.decision': 'allow', 'wardgate.route': 'ehr' })) === before + 3), 'three allowed requests');
  // The count is taken when the response finishes on the server side, which may come after the client has read it.
  t.ok(await eventually(async () => (await reader.counterSum('wardgate.requests', { 'wardgate.decision': 'block', 'wardgate.route': 'ehr' })) === blockedBefore + 1), 'one blocked request');
});

t.test('requests without a decision count as none', async (t) => {
  const before = await reader.counterSum('wardgate.requests', { 'wardgate.decision': 'none' });
  const response = await rawRequest(stack, '/fhir/Patient', { headers: { accept: 'application/json' } });

  t.equal(response.status, 401);
  t.ok(await eventually(async () => (await reader.counterSum('wardgate.requests', { 'wardgate.decision': 'none' })) === before + 1));
});

t.test('risk and latencies are recorded', async (t) => {
  const response = await rawRequest(stack, '/fhir/Patient', { headers: { cookie, accept: 'application/json' } });
  t.equal(response.status, 200);

  t.ok((await reader.histogramCount('wardgate.risk', { 'wardgate.route': 'ehr' })) >= 1, 'risk histogram');
  t.ok((await reader.histogramCount('wardgate.scorer.duration')) >= 1, 'scorer latency');
  t.ok((await reader.histogramCount('wardgate.redis.duration')) >= 1, 'Redis latency');
  t.ok(await eventually(async () => (await reader.histogramCount('wardgate.upstream.duration')) >= 1), 'upstream latency');
  t.ok(await eventually(async () => (await reader.histogramCount('wardgate.idp.duration')) >= 1), 'IdP latency (the sign-in exchanged a code)');
  t.ok(await eventually(async () => (await reader.histogramCount('wardgate.audit.write.duration')) >= 1), 'audit write latency');
  t.ok(await eventually(async () => (await reader.histogramCount('http.server.request.duration', { 'http.route': '/*', 'http.request.method': 'GET' })) >= 1), 'HTTP server duration');
  const risk = (await reader.points('wardgate.risk'))[0]?.value as { min?: number; max?: number } | undefined;
  t.ok(risk && risk.min! >= 0 && risk.max! <= 1, 'risk stays in [0, 1]');
});

t.test('failed policy reload is counted', async (t) => {
  const before = await reader.counterSum('wardgate.reloads', { 'wardgate.reload.kind': 'policy', 'wardgate.reload.outcome': 'failure' });
  writeFileSync(policyFile, 'version: 1\nrules: [ {id: broken, action: explode} ]\n');

  const counted = await eventually(async () => (await reader.counterSum('wardgate.reloads', { 'wardgate.reload.kind': 'policy', 'wardgate.reload.outcome': 'failure' })) > before);
  t.ok(counted, 'a failure is counted');
  copyFileSync(new URL('../../policy/examples/demo.yaml', import.meta.url), policyFile);
});

t.test('Prometheus endpoint serves the metrics', async (t) => {
  const address = stack.wardgate.prometheusAddress;
  t.ok(address, 'the endpoint is running');
  t.equal(address?.address, '127.0.0.1', 'it listens where configured');
  t.not(address?.port, Number(new URL(stack.url).port), 'it is not the public listener');

  const scraped = await scrape(address!.port);
  t.equal(scraped.status, 200);
  t.match(scraped.contentType, /^text\/plain/);
  t.match(scraped.body, /wardgate_requests_total\{[^}]*wardgate_decision="allow"[^}]*wardgate_route="ehr"[^}]*\} [1-9]/);
  t.match(scraped.body, /wardgate_risk_bucket\{/);
  t.match(scraped.body, /wardgate_scorer_duration_bucket\{/);
  t.match(scraped.body, /wardgate_upstream_duration_count/);
  t.match(scraped.body, /service_name="wardgate"/);
  t.notMatch(scraped.body, /p-0001/, 'no patient id in any label');

  const other = await scrape(address!.port, '/');
  t.equal(other.status, 404);
});

t.test('public listener does not serve metrics', async (t) => {
  const response = await rawRequest(stack, '/metrics', { headers: { accept: 'application/json' } });
  t.not(response.status, 200);
  t.notMatch(response.body, /wardgate_requests_total/);
});
