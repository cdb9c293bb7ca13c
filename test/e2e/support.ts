import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startDemoStack, type DemoStack, type DemoStackOptions } from '../../demo/demo-stack.ts';
import { Browser, type BrowserResponse } from '../identity/helpers.ts';
import { waitUntil } from '../wait.ts';
import { sha256 } from '../../proxy/break-glass/store.ts';
import type { Test } from 'tap';

export const REDIS_URL = 'redis://127.0.0.1:6379';

export interface TestStack extends DemoStack {
  readonly spans: InMemorySpanExporter;
  readonly keyPrefix: string;
  /** Advances or sets the clock that Wardgate and the scorer see. */
  clock: { now: number };
}

/**
 * Starts the full demo stack on free ports with its own Redis key prefix, an in-memory span
 * exporter and a controllable clock. `close()` also deletes the prefix's keys.
 */
export async function startTestStack(options: Partial<DemoStackOptions> = {}): Promise<TestStack> {
  const stateDir = mkdtempSync(join(tmpdir(), 'wgtest-e2e-'));
  const keyPrefix = `wgtest:e2e:${randomBytes(6).toString('hex')}:`;
  const spans = new InMemorySpanExporter();
  const clock = { now: Date.now() };
  const stack = await startDemoStack({
    port: 0,
    idpPort: 0,
    stateDir,
    redisUrl: REDIS_URL,
    redisKeyPrefix: keyPrefix,
    now: () => clock.now,
    logger: pino({ level: process.env.WARDGATE_TEST_LOG ?? 'silent' }),
    spanProcessors: [new SimpleSpanProcessor(spans)],
    ...options,
  });
  return {
    ...stack,
    spans,
    keyPrefix,
    clock,
    close: async () => {
      await stack.close();
      await deleteKeys(keyPrefix);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Signs a browser in through Wardgate and the demo IdP, ending at the demo app's page. */
export async function signIn(stack: DemoStack, browser: Browser, username: string, path = '/'): Promise<BrowserResponse> {
  const account = stack.idp.accounts.find((candidate) => candidate.username === username);
  if (!account) throw new Error(`no demo account ${username}`);
  const loginPage = await browser.follow(await browser.request(`${stack.url}${path}`));
  return browser.follow(await browser.submitForm(loginPage, { username, password: account.password }));
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * Sends one HTTPS request with full control over headers and the client's source address
 * (any address in 127.0.0.0/8 works on Linux, which lets a test come from a "new network").
 */
export function rawRequest(
  stack: DemoStack,
  path: string,
  options: { method?: string; headers?: Record<string, string>; localAddress?: string; body?: string; ecdhCurve?: string; servername?: string } = {},
): Promise<RawResponse & { group: string | undefined }> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      `${stack.url}${path}`,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ca: stack.certificates.ca.cert,
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(options.ecdhCurve ? { ecdhCurve: options.ecdhCurve } : {}),
        // With a forged Host header, the certificate is still checked against this name.
        ...(options.servername ? { servername: options.servername } : {}),
      },
      (response) => {
        const group = (response.socket as import('node:tls').TLSSocket).getEphemeralKeyInfo?.() as { name?: string } | null;
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8'), group: group?.name }));
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

/**
 * Waits for a finished span that matches: a span ends on the response's 'finish' event, which
 * can come after the client has read the whole response.
 */
export async function waitForSpan(stack: TestStack, predicate: (span: ReturnType<TestStack['spans']['getFinishedSpans']>[number]) => boolean) {
  let span: ReturnType<TestStack['spans']['getFinishedSpans']>[number] | undefined;
  if (await waitUntil(() => (span = stack.spans.getFinishedSpans().find(predicate)) !== undefined)) return span!;
  throw new Error('expected span was not exported within 30 s');
}

/**
 * Moves the stack's clock to 12:00 UTC of the same day when the real time is outside
 * 08:00 to 18:00 UTC. A test about something else is then not decided by the demo
 * policy's office hours or the model's hour-of-day features. Call it after signing in: ID
 * tokens are checked against this clock. Returns a function that restores the clock.
 */
export function atDaytime(stack: TestStack): () => void {
  const saved = stack.clock.now;
  const hour = new Date(saved).getUTCHours();
  if (hour < 8 || hour >= 18) {
    const noon = new Date(saved);
    noon.setUTCHours(12, 0, 0, 0);
    stack.clock.now = noon.getTime();
  }
  return () => {
    stack.clock.now = saved;
  };
}

export { Browser };

/**
 * Moves the break-glass grant of `username` on `routeId` to expire 300 ms after the stack's
 * clock, which does not advance until the test sets it. Teardown restores the clock and
 * deletes the grant.
 */
export async function shortenGrant(t: Test, stack: TestStack, username: string, routeId = 'ehr'): Promise<void> {
  const redis = new Redis(REDIS_URL);
  t.teardown(() => redis.disconnect());
  const subject = stack.idp.accounts.find((account) => account.username === username)!.subject;
  const key = `${stack.keyPrefix}kv:bg:grant:${sha256(subject).slice(0, 32)}:${sha256(routeId).slice(0, 16)}`;
  const stored = await redis.get(key);
  t.ok(stored, 'the grant is in the store');
  await redis.set(key, JSON.stringify({ ...JSON.parse(stored!), expires_at: stack.clock.now + 300 }), 'KEEPTTL');
  const savedClock = stack.clock.now;
  t.teardown(async () => {
    stack.clock.now = savedClock;
    await redis.del(key);
  });
}
