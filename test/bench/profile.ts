// `node test/bench/profile.ts [file.cpuprofile]`: measures where Wardgate's time per request
// goes. The demo upstream and the load generator run in their own processes, so this process
// runs only Wardgate (and the demo IdP, idle once the session exists). It counts the Redis
// commands per request with MONITOR on one run, then takes a V8 CPU profile of this process
// over a second run and prints the time per area of the code. Settings: BENCH_CONCURRENCY
// (default 16) and BENCH_DURATION_MS (default 5000).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startDemoStack } from '../../demo/demo-stack.ts';
import { Browser } from '../identity/helpers.ts';
import { deleteKeys, signIn } from '../e2e/support.ts';
import { runLoad, startUpstreamProcess } from './processes.ts';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5000);
const PATH = '/fhir/Patient/p-0001';
const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
const profileFile = process.argv[2];
const PACKAGE = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//;

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: number[];
}
interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
  readonly startTime: number;
  readonly endTime: number;
}

const stateDir = mkdtempSync(join(tmpdir(), 'wardgate-profile-'));
const keyPrefix = `wgprofile:${process.pid}:`;
const policyFile = join(stateDir, 'bench-policy.yaml');
writeFileSync(policyFile, 'version: 1\nrules:\n  - id: allow-signed-in\n    match: { authenticated: true }\n    action: allow\n');

const upstream = await startUpstreamProcess();
const stack = await startDemoStack({ port: 0, idpPort: 0, stateDir, redisKeyPrefix: keyPrefix, policyFile, upstreamUrl: upstream.url, logger: pino({ level: 'silent' }) });
try {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  const target = { url: `${stack.url}${PATH}`, headers: { accept: 'application/json', cookie }, ca: stack.certificates.ca.cert, concurrency: CONCURRENCY };

  await runLoad({ ...target, durationMs: 2000, warmupMs: 1000 });
  await countRedisCommands(target);
  await profileRun(target);
} finally {
  await stack.close();
  upstream.close();
  await deleteKeys(keyPrefix);
  rmSync(stateDir, { recursive: true, force: true });
}

/**
 * Runs a short load with MONITOR on and prints the commands per request that carry this run's
 * key prefix. Commands sent by clients and commands run by Lua scripts inside Redis are listed
 * apart. Several client commands may share one socket write.
 */
async function countRedisCommands(target: Record<string, unknown>): Promise<void> {
  const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const monitor = await client.monitor();
  const counts = new Map<string, number>();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (!args.some((arg) => arg.includes(keyPrefix))) return;
    const name = `${source === 'lua' ? 'in Lua' : 'client'} ${args[0]!.toUpperCase()}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  });
  // Without a warm-up every request the generator sent is counted. MONITOR slows Redis, so this run gives no timings.
  const result = await runLoad({ ...target, durationMs: 2000, warmupMs: 0 });
  await new Promise((resolve) => setTimeout(resolve, 500));
  monitor.disconnect();
  client.disconnect();

  console.log(`Redis commands per request (MONITOR, ${result.requests} requests, statuses ${JSON.stringify(result.statuses)})`);
  const totals = { client: 0, 'in Lua': 0 };
  for (const [name, count] of [...counts].sort((a, b) => a[0].localeCompare(b[0]) || b[1] - a[1])) {
    totals[name.startsWith('client') ? 'client' : 'in Lua'] += count;
    console.log(`  ${name.padEnd(20)} ${(count / result.requests).toFixed(2)}`);
  }
  console.log(`  ${'client, total'.padEnd(20)} ${(totals.client / result.requests).toFixed(2)}`);
  console.log(`  ${'in Lua, total'.padEnd(20)} ${(totals['in Lua'] / result.requests).toFixed(2)}`);
}

/** Profiles this process over one load run and prints the CPU time per request by area. */
async function profileRun(target: Record<string, unknown>): Promise<void> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  const cpuBefore = process.cpuUsage();
  const ioBefore = syscallCounts();
  const result = await runLoad({ ...target, durationMs: DURATION_MS, warmupMs: 0 });
  const cpu = process.cpuUsage(cpuBefore);
  const io = syscallCounts();
  const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
  session.disconnect();
  if (profileFile) writeFileSync(profileFile, JSON.stringify(profile));

  const perRequest = (us: number) => (us / result.requests).toFixed(1).padStart(7);
  console.log('');
  console.log(`CPU profile of the Wardgate process: ${result.requests} requests, ${result.rps.toFixed(0)} req/s, statuses ${JSON.stringify(result.statuses)}`);
  console.log(`process CPU time (user + system, all threads) ${perRequest(cpu.user + cpu.system)} µs per request`);
  if (io && ioBefore) console.log(`read and write system calls per request: ${((io.reads - ioBefore.reads) / result.requests).toFixed(1)} reads, ${((io.writes - ioBefore.writes) / result.requests).toFixed(1)} writes`);
  const { byArea, total } = attribute(profile);
  const busy = total - (byArea.get('(idle)') ?? 0);
  const share = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  console.log(`main thread: sampled ${perRequest(total)} µs per request, of which busy ${perRequest(busy)} µs`);

  const byCategory = new Map<string, number>();
  for (const [area, us] of byArea) byCategory.set(categoryOf(area), (byCategory.get(categoryOf(area)) ?? 0) + us);
  console.log('category                                                     µs/request   share of busy time');
  for (const [category, us] of [...byCategory].sort((a, b) => b[1] - a[1])) {
    if (category !== '(idle)') console.log(`  ${category.padEnd(58)} ${perRequest(us)}   ${share(us)}`);
  }
  console.log('area (innermost Wardgate file, else package, else leaf)       µs/request   share of busy time');
  for (const [area, us] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    if (area !== '(idle)') console.log(`  ${area.padEnd(58)} ${perRequest(us)}   ${share(us)}`);
  }
}

/** Returns the read and write system calls of this process so far (Linux `/proc/self/io`), or null elsewhere. */
function syscallCounts(): { reads: number; writes: number } | null {
  try {
    const text = readFileSync('/proc/self/io', 'utf8');
    return { reads: Number(/^syscr: (\d+)$/m.exec(text)?.[1]), writes: Number(/^syscw: (\d+)$/m.exec(text)?.[1]) };
  } catch {
    return null;
  }
}

/** Groups the areas of {@link attribute} into the parts of the request path. */
function categoryOf(area: string): string {
  if (/^package (ioredis|@ioredis\/|redis-parser|denque|standard-as-callback|cluster-key-slot)/.test(area) || /^(scorer\/baselines\/redis-store|proxy\/state\/redis-key-value-store|proxy\/review\/queue)\.ts$/.test(area)) {
    return 'Redis client: commands, socket writes, replies';
  }
  if (area.startsWith('scorer/') || area === 'package onnxruntime-node') return 'scorer: features, inference, observations';
  if (area.startsWith('proxy/audit/')) return 'audit trail';
  if (area === 'proxy/patient-target.ts') return 'patient pseudonyms for spans and audit records';
  if (area.startsWith('proxy/telemetry/') || area.startsWith('package @opentelemetry/')) return 'telemetry: span, metrics';
  if (area.startsWith('proxy/forward/') || area === 'package http-proxy') return 'forwarding: http-proxy and the upstream request';
  if (area.startsWith('proxy/identity/') || area.startsWith('proxy/assertion/') || area === 'package jose') return 'identity: session, signed assertion';
  if (area.startsWith('policy/') || area.startsWith('package @bufbuild/')) return 'policy';
  if (area.startsWith('proxy/') || area.startsWith('demo/')) return 'other Wardgate code: routing, pipeline, oversight';
  if (area === 'node:inspector') return 'the profiler itself';
  if (area.startsWith('(') && !area.startsWith('(native)')) return area;
  return 'Node.js HTTP, TLS and sockets outside Wardgate frames';
}

/**
 * Attributes each sample to the innermost frame on its stack that is a Wardgate source file
 * (library and Node.js code called from it counts for that file). A sample without such a
 * frame goes to the innermost package on its stack, else to the Node.js module of its leaf.
 */
function attribute(profile: CpuProfile): { byArea: Map<string, number>; total: number } {
  const parents = new Map<number, number>();
  const nodes = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    nodes.set(node.id, node);
    for (const child of node.children ?? []) parents.set(child, node.id);
  }

  const areaOfNode = new Map<number, string>();
  const areaOf = (id: number): string => {
    const known = areaOfNode.get(id);
    if (known !== undefined) return known;
    const leaf = nodes.get(id)!.callFrame;
    let area: string | undefined;
    let packageName: string | undefined;
    for (let current: number | undefined = id; current !== undefined && area === undefined; current = parents.get(current)) {
      const url = nodes.get(current)!.callFrame.url;
      if (url.startsWith('file://') && !url.includes('/node_modules/') && !url.includes('/test/bench/')) area = relative(REPOSITORY, fileURLToPath(url));
      packageName ??= PACKAGE.exec(url)?.[1];
    }
    area ??= packageName === undefined ? leafArea(leaf) : `package ${packageName}`;
    areaOfNode.set(id, area);
    return area;
  };

  const byArea = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    const area = areaOf(profile.samples[i]!);
    byArea.set(area, (byArea.get(area) ?? 0) + delta);
    total += delta;
  }
  return { byArea, total };
}

function leafArea(frame: { functionName: string; url: string }): string {
  if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : `(native) ${frame.functionName}`;
  if (frame.url.startsWith('node:')) return frame.url;
  return frame.url.replace(/^file:\/\//, '');
}
