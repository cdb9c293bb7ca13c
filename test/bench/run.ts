// `npm run bench`: the same load, side by side in one run, against the demo upstream
// directly, through a bare http-proxy over TLS, and through Wardgate's full path
// (TLS, session, scoring with Redis, policy, signed assertion, forwarding). Then the scorer's
// own cost per request, without Redis, one call at a time and with 32 calls in flight.
// The demo upstream and the load generator run in their own processes, so that this process
// spends its CPU time on the proxies (the demo IdP in it is idle once the session exists).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import httpProxy from 'http-proxy';
import { pino } from 'pino';
import { startDemoStack } from '../../demo/demo-stack.ts';
import { Browser } from '../identity/helpers.ts';
import { deleteKeys, signIn } from '../e2e/support.ts';
import { formatScorerCosts, measureScorerCosts } from './scorer-cost.ts';
import { runPolicyBench } from './policy-bench.ts';
import { runLoad, startUpstreamProcess, type LoadResult } from './processes.ts';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const PATH = '/fhir/Patient/p-0001';

const stateDir = mkdtempSync(join(tmpdir(), 'wardgate-bench-'));
const keyPrefix = `wgbench:${process.pid}:`;
// Every signed-in request is allowed, so the benchmark measures the full path of an allowed
// request: the demo policy would step up a user who sends thousands of requests a second.
const policyFile = join(stateDir, 'bench-policy.yaml');
writeFileSync(policyFile, 'version: 1\nrules:\n  - id: allow-signed-in\n    match: { authenticated: true }\n    action: allow\n');

const upstream = await startUpstreamProcess();
const stack = await startDemoStack({ port: 0, idpPort: 0, stateDir, redisKeyPrefix: keyPrefix, policyFile, upstreamUrl: upstream.url, logger: pino({ level: 'silent' }) });
const browser = new Browser(stack.certificates.ca.cert);
await signIn(stack, browser, 'physician');
const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;

const bare = httpProxy.createProxyServer({ target: stack.appUrl, agent: new (await import('node:http')).Agent({ keepAlive: true }) });
bare.on('error', (_error, _req, res) => {
  if ('writeHead' in res) res.writeHead(502).end();
});
const bareServer = https.createServer({ key: stack.certificates.server.key, cert: stack.certificates.server.cert, ecdhCurve: 'X25519MLKEM768:X25519:P-256' }, (req, res) => bare.web(req, res));
await new Promise<void>((resolve) => bareServer.listen(0, '127.0.0.1', resolve));
const barePort = (bareServer.address() as { port: number }).port;

const targets = {
  direct: { url: `${stack.appUrl}${PATH}`, headers: { accept: 'application/json' } },
  'bare http-proxy': { url: `https://localhost:${barePort}${PATH}`, headers: { accept: 'application/json' }, ca: stack.certificates.ca.cert },
  wardgate: { url: `${stack.url}${PATH}`, headers: { accept: 'application/json', cookie }, ca: stack.certificates.ca.cert },
};

const results: Record<string, LoadResult[]> = { direct: [], 'bare http-proxy': [], wardgate: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, target] of Object.entries(targets)) {
      results[name]!.push(await runLoad({ ...target, concurrency: CONCURRENCY, durationMs: DURATION_MS, warmupMs: 1000 }));
    }
  }
} finally {
  bareServer.close();
  bareServer.closeAllConnections();
  await stack.close();
  upstream.close();
  await deleteKeys(keyPrefix);
  rmSync(stateDir, { recursive: true, force: true });
}

const best = (name: string) => results[name]!.reduce((a, b) => (b.rps > a.rps ? b : a));
console.log(`Node ${process.version}, ${CONCURRENCY} concurrent connections, ${DURATION_MS} ms per run, best of ${ROUNDS} rounds, GET ${PATH}`);
console.log('target            req/s     p50 ms   p99 ms   statuses');
for (const name of Object.keys(results)) {
  const result = best(name);
  console.log(`${name.padEnd(16)} ${result.rps.toFixed(0).padStart(7)} ${result.p50.toFixed(2).padStart(9)} ${result.p99.toFixed(2).padStart(8)}   ${JSON.stringify(result.statuses)}`);
}
const wardgate = best('wardgate');
const proxy = best('bare http-proxy');
console.log(`ratio wardgate / bare http-proxy: throughput ${(wardgate.rps / proxy.rps).toFixed(2)}, p50 latency ${(wardgate.p50 / proxy.p50).toFixed(2)}, p99 latency ${(wardgate.p99 / proxy.p99).toFixed(2)}`);
// Measured after the stack has closed, so the HTTP load does not share the CPU with it.
console.log('');
console.log(formatScorerCosts(await measureScorerCosts()));
if (Object.keys(wardgate.statuses).some((status) => status !== '200')) {
  console.log('WARNING: Wardgate answered with statuses other than 200; the figures do not measure the allowed path alone.');
  process.exitCode = 1;
}

console.log('');
runPolicyBench();
