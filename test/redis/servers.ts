import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';

import { freePort } from '../../demo/demo-stack.ts';
import { waitUntil } from '../wait.ts';

export { freePort };

const run = promisify(execFile);

/** Throwaway Redis processes started by a test; `stop()` kills them and removes their folder. */
export interface RedisProcesses {
  /** `redis://127.0.0.1:PORT` of each node: Cluster masters, or the Sentinels. */
  readonly urls: string[];
  stop(): Promise<void>;
}

/** Starts a Redis Cluster of `size` masters without replicas or persistence, and waits until every slot is served. */
export async function startRedisCluster(size = 3): Promise<RedisProcesses> {
  const dir = mkdtempSync(join(tmpdir(), 'wgtest-cluster-'));
  const children: ChildProcess[] = [];
  const stop = stopper(children, dir);
  try {
    const ports: number[] = [];
    for (let index = 0; index < size; index++) {
      const port = await freePort();
      ports.push(port);
      children.push(startServer(port, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000']));
    }
    for (const port of ports) await untilPing(port);
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    for (const port of ports) await until(async () => (await command(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'), `cluster node ${port} to report cluster_state:ok`);
    return { urls: ports.map((port) => `redis://127.0.0.1:${port}`), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Moves hash slot `slot` from the master on `fromPort` to the master on `toPort` while clients
 * keep working, as `redis-cli --cluster reshard` does. The slot is marked importing and
 * migrating, and its keys move in batches of 10 with MIGRATE. Then the masters in `ports`
 * learn the new owner.
 */
export async function moveSlot(slot: number, fromPort: number, toPort: number, ports: readonly number[]): Promise<void> {
  const connections = new Map(ports.map((port) => [port, new Redis({ port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 })]));
  const on = (port: number) => connections.get(port)!;
  try {
    const fromId = (await on(fromPort).call('CLUSTER', 'MYID')) as string;
    const toId = (await on(toPort).call('CLUSTER', 'MYID')) as string;
    await on(toPort).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId);
    await on(fromPort).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
    for (;;) {
      const keys = (await on(fromPort).call('CLUSTER', 'GETKEYSINSLOT', slot, 10)) as string[];
      if (keys.length === 0) break;
      await on(fromPort).call('MIGRATE', '127.0.0.1', toPort, '', 0, 5000, 'KEYS', ...keys);
    }
    // The new owner learns first and the old one second, so that no two masters send a client
    // back and forth. In the other order, clients here met MOVED replies in a loop.
    for (const port of [toPort, fromPort, ...ports.filter((other) => other !== toPort && other !== fromPort)]) {
      await on(port).call('CLUSTER', 'SETSLOT', slot, 'NODE', toId);
    }
  } finally {
    for (const connection of connections.values()) connection.disconnect();
  }
}

/** Returns the masters' ports and, for each slot that contains keys starting with `prefix`, the port of the master that owns it. */
export async function slotsInUse(urls: readonly string[], prefix: string): Promise<{ ports: number[]; owners: Map<number, number> }> {
  const ports = urls.map((url) => Number(new URL(url).port));
  const owners = new Map<number, number>();
  for (const port of ports) {
    const keys = JSON.parse(await command(port, 'KEYS', `${prefix}*`)) as string[];
    for (const key of keys) owners.set(JSON.parse(await command(port, 'CLUSTER', 'KEYSLOT', key)) as number, port);
  }
  return { ports, owners };
}

/** A master with one Sentinel; `stopSentinel` and `startSentinel` take the Sentinel down and up again on its port. */
export interface RedisSentinelProcesses extends RedisProcesses {
  readonly masterPort: number;
  stopSentinel(): Promise<void>;
  startSentinel(): Promise<void>;
}

/** Starts a Redis master and one Sentinel that monitors it as `master`; the URLs are the Sentinel's. */
export async function startRedisSentinel(master: string): Promise<RedisSentinelProcesses> {
  const dir = mkdtempSync(join(tmpdir(), 'wgtest-sentinel-'));
  const children: ChildProcess[] = [];
  const stop = stopper(children, dir);
  try {
    const masterPort = await freePort();
    children.push(startServer(masterPort, dir, []));
    await untilPing(masterPort);
    const sentinelPort = await freePort();
    // A Sentinel rewrites its configuration file, so it gets its own file in the folder.
    const file = join(dir, 'sentinel.conf');
    writeFileSync(file, `port ${sentinelPort}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor ${master} 127.0.0.1 ${masterPort} 1\n`);
    let sentinel: ChildProcess | undefined;
    const startSentinel = async (): Promise<void> => {
      sentinel = spawn('redis-server', [file, '--sentinel'], { stdio: 'ignore' });
      children.push(sentinel);
      await untilPing(sentinelPort);
      await until(async () => (await command(sentinelPort, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', master)).includes(String(masterPort)), `Sentinel to report master ${master}`);
    };
    const stopSentinel = async (): Promise<void> => {
      const running = sentinel;
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        running.once('exit', () => resolve());
        running.kill('SIGKILL');
      });
    };
    await startSentinel();
    return { urls: [`redis://127.0.0.1:${sentinelPort}`], masterPort, stop, stopSentinel, startSentinel };
  } catch (error) {
    await stop();
    throw error;
  }
}

function startServer(port: number, dir: string, extra: string[]): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...extra], { stdio: 'ignore' });
}

function stopper(children: ChildProcess[], dir: string): () => Promise<void> {
  return async () => {
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    })));
    rmSync(dir, { recursive: true, force: true });
  };
}

/** Sends one command to 127.0.0.1:`port` and returns the reply as text. */
async function command(port: number, ...args: string[]): Promise<string> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  client.on('error', () => {});
  try {
    await client.connect();
    return JSON.stringify(await client.call(args[0]!, ...args.slice(1)));
  } finally {
    client.disconnect();
  }
}

async function untilPing(port: number): Promise<void> {
  await until(async () => (await command(port, 'PING')).includes('PONG'), `redis-server on port ${port} to answer PING`);
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  if (!(await waitUntil(() => check().catch(() => false), 30_000, 100))) throw new Error(`timed out after 30 s waiting for ${what}`);
}
