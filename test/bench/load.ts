// Load generator for `npm run bench`, run in its own process so that its CPU use does not
// count against the server under test. Prints one JSON line with the results.
import http from 'node:http';
import https from 'node:https';

interface LoadOptions {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly ca?: string;
  readonly concurrency: number;
  readonly durationMs: number;
  readonly warmupMs: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
const target = new URL(options.url);
const secure = target.protocol === 'https:';
const agent = secure
  ? new https.Agent({ keepAlive: true, maxSockets: options.concurrency, ca: options.ca })
  : new http.Agent({ keepAlive: true, maxSockets: options.concurrency });

function once(): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = (secure ? https : http).request(target, { agent, headers: options.headers }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
    request.end();
  });
}

async function run(durationMs: number, record: boolean) {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const deadline = Date.now() + durationMs;
  const worker = async () => {
    while (Date.now() < deadline) {
      const started = process.hrtime.bigint();
      const status = await once();
      if (!record) continue;
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { latencies, statuses, elapsedMs: Date.now() - started };
}

await run(options.warmupMs, false);
const { latencies, statuses, elapsedMs } = await run(options.durationMs, true);
latencies.sort((a, b) => a - b);
const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
process.stdout.write(`${JSON.stringify({ requests: latencies.length, rps: (latencies.length * 1000) / elapsedMs, p50: quantile(0.5), p99: quantile(0.99), statuses })}\n`);
agent.destroy();
