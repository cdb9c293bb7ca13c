import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-node';
import type { IMetricReader } from '@opentelemetry/sdk-metrics';
import type { TelemetryConfig } from '../proxy/telemetry/config.ts';
import type { Logger } from 'pino';
import { Redis } from 'ioredis';
import { DEFAULT_HOSTNAMES, ensureDevCertificates, type DevCertificates } from '../certs/dev-certificates.ts';
import type { WardgateConfig } from '../proxy/config/config.ts';
import { decodeKey } from '../proxy/config/config.ts';
import { CARE_DEFAULTS, SCORER_DEFAULTS, type ScorerRuntimeConfig } from '../proxy/config/scorer-config.ts';
import { defaultAuditConfig } from '../proxy/audit/config.ts';
import type { RouteConfig } from '../proxy/routing/router.ts';
import { startWardgate, type RunningWardgate, type StartOptions } from '../proxy/runtime.ts';
import { startDemoApp } from './app/server.ts';
import { startDemoIdp, type DemoIdp } from './idp/idp.ts';

const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/**
 * Default Redis key prefix of the demo: `wg:demo:` and 8 hex digits of a hash of this folder,
 * so that demos in two checkouts on one machine keep separate baselines, sessions and review
 * queues in the same Redis database.
 */
export const DEMO_KEY_PREFIX = `wg:demo:${createHash('sha256').update(REPOSITORY).digest('hex').slice(0, 8)}:`;

/**
 * Deletes every key under `prefix` (the demo's baselines, sessions, grants and review queue)
 * from the Redis at `redisUrl`, and returns how many were deleted.
 *
 * @throws the connection error when Redis is not reachable.
 */
export async function resetDemoState(redisUrl: string, prefix: string = DEMO_KEY_PREFIX): Promise<number> {
  if (!/^wg:demo:|^wgtest:/.test(prefix)) throw new Error(`invalid prefix ${JSON.stringify(prefix)}: only keys under wg:demo: or wgtest: are deleted`);
  const redis = new Redis(redisUrl, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2_000 });
  // ioredis reads keyPrefix from the URL's query and adds it to UNLINK but not to SCAN's
  // pattern, so the keys deleted would not be the keys found.
  if (redis.options.keyPrefix) {
    redis.disconnect();
    throw new Error(`invalid Redis URL: it sets keyPrefix ${JSON.stringify(redis.options.keyPrefix)}; remove the keyPrefix query parameter from REDIS_URL`);
  }
  // ioredis rejects connect() with "Connection is closed."; the error event names the cause.
  let cause: Error | undefined;
  redis.on('error', (error: Error) => {
    cause = error;
  });
  try {
    await redis.connect().catch((error: Error) => {
      throw cause ?? error;
    });
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}

/** The demo app's HTML patient page, `/patients/{id}`, names a patient like a FHIR read. */
export const DEMO_PATIENT_PATHS: readonly string[] = Object.freeze(['/patients/{id}']);

export interface DemoStackOptions {
  /** Wardgate's port; 0 picks a free one. Default 8443. */
  readonly port?: number;
  /** The IdP's port; 0 picks a free one. Default 8444. */
  readonly idpPort?: number;
  /** Folder for generated certificates and keys. Default `.wardgate` in the repository. */
  readonly stateDir?: string;
  readonly redisUrl?: string;
  readonly redisKeyPrefix?: string;
  /** A Redis Cluster or Sentinel in place of `redisUrl`. */
  readonly redisTopology?: Pick<WardgateConfig['redis'], 'cluster' | 'sentinel'>;
  readonly policyFile?: string;
  /** ONNX model file; default `scorer/models/risk-v4.onnx`. */
  readonly modelFile?: string;
  /** Scorer settings, each replacing the demo's value. The demo uses `SCORER_DEFAULTS` with `patient_paths` set to {@link DEMO_PATIENT_PATHS}. */
  readonly scorer?: Partial<ScorerRuntimeConfig>;
  /** Candidate policy run in shadow mode beside `policyFile`. */
  readonly shadowPolicyFile?: string;
  readonly routes?: (upstream: string) => RouteConfig[];
  readonly session?: WardgateConfig['session'];
  readonly now?: () => number;
  readonly logger?: Logger;
  readonly spanProcessors?: SpanProcessor[];
  /** Changes the generated configuration before Wardgate starts (tests add bearer issuers, client CAs and similar). */
  readonly configure?: (config: WardgateConfig) => WardgateConfig;
  /** Interval in milliseconds at which `tls.crl` is checked for changes; default 1000. */
  readonly crlPollMs?: number;
  /** Extra Wardgate start options, e.g. a stand-in policy or an audit port in tests. */
  readonly wardgateOptions?: Pick<StartOptions, 'policy' | 'audit'>;
  /** Extra metric readers passed to Wardgate, e.g. an in-memory reader in tests. */
  readonly metricReaders?: IMetricReader[];
  readonly telemetry?: TelemetryConfig;
  /**
   * Base URL of a demo clinical app that is already running, for example in another process
   * (`http://127.0.0.1:41234`). When absent the stack starts the app in this process.
   */
  readonly upstreamUrl?: string;
}

export interface DemoStack {
  readonly url: string;
  readonly idp: DemoIdp;
  readonly appUrl: string;
  readonly certificates: DevCertificates;
  readonly wardgate: RunningWardgate;
  readonly config: WardgateConfig;
  /** Closes every part, then rejects with the first failure, such as audit records Wardgate could not write. */
  close(): Promise<void>;
}

/**
 * Starts the whole demo: development certificates, the demo clinical app (upstream), the
 * demo IdP on HTTPS, and Wardgate in front, with embedded defaults. Tests start the same
 * stack on free ports.
 */
export async function startDemoStack(options: DemoStackOptions = {}): Promise<DemoStack> {
  const stateDir = options.stateDir ?? path.join(REPOSITORY, '.wardgate');
  const certificates = await ensureDevCertificates(path.join(stateDir, 'certs'), DEFAULT_HOSTNAMES);
  const patientKey = await loadOrCreateKey(path.join(stateDir, 'demo-patient.key'));
  const closers: Array<() => Promise<void>> = [];

  try {
    const app = options.upstreamUrl === undefined ? await startDemoApp({ port: 0, host: '127.0.0.1' }) : { url: options.upstreamUrl };
    if ('close' in app) closers.push(() => app.close());

    // The IdP must know Wardgate's redirect URIs before Wardgate starts, so a requested
    // port 0 is replaced by a free port picked here.
    const port = options.port ?? 8443;
    const clientSecret = randomBytes(24).toString('base64url');
    const redirectHosts = ['localhost', 'ehr.localhost', '127.0.0.1'];
    const wardgatePort = port === 0 ? await freePort() : port;
    const idp = await startDemoIdp({
      port: options.idpPort ?? 8444,
      host: '127.0.0.1',
      tls: { key: certificates.server.key, cert: certificates.server.cert },
      issuer: options.idpPort === 0 ? undefined : `https://localhost:${options.idpPort ?? 8444}`,
      clients: [{
        client_id: 'wardgate-demo',
        client_secret: clientSecret,
        redirect_uris: redirectHosts.map((host) => `https://${host}:${wardgatePort}/.wardgate/callback`),
        post_logout_redirect_uris: redirectHosts.map((host) => `https://${host}:${wardgatePort}/.wardgate/logged-out`),
        backchannel_logout_uri: `https://localhost:${wardgatePort}/.wardgate/backchannel-logout`,
      }],
      clientCa: certificates.ca.cert,
    });
    closers.push(() => idp.close());

    const issuer = idp.issuer;
    const generated: WardgateConfig = {
      listen: { host: '127.0.0.1', port: wardgatePort },
      tls: { cert: certificates.paths.serverCert, key: certificates.paths.serverKey, groups: 'X25519MLKEM768:X25519:P-256' },
      redis: { url: options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', key_prefix: options.redisKeyPrefix ?? DEMO_KEY_PREFIX, ...options.redisTopology },
      oidc: { issuer, client_id: 'wardgate-demo', client_secret: clientSecret, ca: certificates.paths.caCert },
      session: options.session ?? { idle_timeout: 1800, absolute_lifetime: 12 * 3600 },
      policy: options.policyFile ?? path.join(REPOSITORY, 'policy/examples/demo.yaml'),
      model: options.modelFile ?? path.join(REPOSITORY, 'scorer/models/risk-v4.onnx'),
      patient_key: patientKey,
      assertion: { header: 'x-wardgate-assertion', ttl: 60 },
      routes: options.routes?.(app.url) ?? demoRoutes(app.url),
      // The demo app serves Practitioner, CareTeam, Encounter, Appointment and flagged patients.
      care: { ...CARE_DEFAULTS, source: 'fhir', fhir_base: `${app.url}/fhir` },
      scorer: { ...SCORER_DEFAULTS, patient_paths: DEMO_PATIENT_PATHS, ...options.scorer },
      ...(options.shadowPolicyFile ? { shadow_policy: options.shadowPolicyFile } : {}),
      audit: defaultAuditConfig(path.join(stateDir, 'audit')),
      ...(options.telemetry ? { telemetry: options.telemetry } : {}),
    };
    const config = options.configure?.(generated) ?? generated;
    const wardgate = await startWardgate(config, {
      allowMemoryFallback: true,
      ...(options.now ? { now: options.now } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.spanProcessors ? { spanProcessors: options.spanProcessors } : {}),
      ...(options.crlPollMs ? { crlPollMs: options.crlPollMs } : {}),
      ...options.wardgateOptions,
      ...(options.metricReaders ? { metricReaders: options.metricReaders } : {}),
    });
    closers.push(() => wardgate.close());

    return {
      url: `https://localhost:${wardgate.address.port}`,
      idp,
      appUrl: app.url,
      certificates,
      wardgate,
      config,
      close: async () => {
        const errors: unknown[] = [];
        for (const close of closers.reverse()) await close().catch((error: unknown) => errors.push(error));
        if (errors.length > 0) throw errors[0];
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => {});
    throw error;
  }
}

/** Returns the demo's single route: the clinical app on every host, failing closed on every dependency. */
export function demoRoutes(upstream: string): RouteConfig[] {
  const failClosed = { redis: 'closed', scorer: 'closed', idp: 'closed' } as const;
  return [{ id: 'ehr', host: '*', path_prefix: '/', upstream, sensitivity: 'normal', fail_mode: failClosed }];
}

/** Keeps the demo's patient pseudonym key across restarts, so pseudonyms in Redis stay stable. */
async function loadOrCreateKey(file: string): Promise<Buffer> {
  const existing = decodeKey(await readFile(file, 'utf8').catch(() => undefined));
  if (existing) return existing;
  const key = randomBytes(32);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, key.toString('hex'), { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, file);
  return key;
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
