import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-node';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { createScorer, createRedisClient, MemoryBaselineStore, RedisBaselineStore, BASELINE_REDIS_OPTIONS, type Scorer } from '../scorer/index.ts';
import { createAssertionSigner } from './assertion/signer.ts';
import type { WardgateConfig } from './config/config.ts';
import { createForwarder } from './forward/forwarder.ts';
import { createIdentity } from './identity/identity.ts';
import { createRequestHandler } from './pipeline/request-handler.ts';
import { createUpgradeHandler } from './pipeline/upgrade-handler.ts';
import { watchPolicy, type PolicyWatcher } from './policy-reload.ts';
import { createRouter } from './routing/router.ts';
import type { KeyValueStore } from './state/key-value-store.ts';
import { MemoryKeyValueStore } from './state/memory-key-value-store.ts';
import { RedisKeyValueStore } from './state/redis-key-value-store.ts';
import { createLogger } from './telemetry/logger.ts';
import { startTracing } from './telemetry/tracing.ts';
import { createTlsListener, getTlsFacts } from './tls/listener.ts';

export interface StartOptions {
  /** Use the in-process store, with a warning, when Redis does not respond at start-up (demo only). */
  readonly allowMemoryFallback?: boolean;
  /** Clock in milliseconds since the epoch; tests replace it to replay a day. */
  readonly now?: () => number;
  readonly logger?: Logger;
  /** Extra span processors, e.g. an in-memory exporter in tests. */
  readonly spanProcessors?: SpanProcessor[];
  /** Interval in milliseconds at which the policy file is checked for changes; default 1000. */
  readonly policyPollMs?: number;
}

export interface RunningWardgate {
  readonly address: AddressInfo;
  /** `redis` or `memory`. */
  readonly storeKind: 'redis' | 'memory';
  readonly logger: Logger;
  close(): Promise<void>;
}

/**
 * Starts Wardgate from a validated configuration: stores, scorer, policy (with hot reload),
 * identity, signer, router, forwarder and the TLS listener.
 */
export async function startWardgate(config: WardgateConfig, options: StartOptions = {}): Promise<RunningWardgate> {
  const logger = options.logger ?? createLogger();
  const now = options.now ?? Date.now;
  const tracing = startTracing({ extraProcessors: options.spanProcessors });
  const closers: Array<() => Promise<unknown> | void> = [() => tracing.shutdown()];

  try {
    const stores = await openStores(config, options, logger);
    closers.push(() => stores.close());

    const policy = await watchPolicy(config.policy, config.routes.map((route) => route.id), logger, options.policyPollMs ?? 1000);
    closers.push(() => policy.close());

    const scorer: Scorer = await createScorer({
      store: stores.baselines,
      modelPath: config.model,
      patientKey: config.patient_key,
      onResponseError: (error) => logger.warn({ err: error }, 'recording a response in the baselines failed'),
    });
    closers.push(() => scorer.close());

    const identity = await createIdentity({
      oidc: {
        issuer: config.oidc.issuer,
        client_id: config.oidc.client_id,
        client_secret: config.oidc.client_secret,
        ...(config.oidc.ca ? { ca: await readFile(config.oidc.ca, 'utf8') } : {}),
      },
      session: { idle_timeout_s: config.session.idle_timeout, absolute_lifetime_s: config.session.absolute_lifetime },
      store: stores.keyValue,
      now,
    });

    const signer = await createAssertionSigner({ issuer: 'wardgate', ttlSeconds: config.assertion.ttl });
    const router = createRouter(config.routes);
    const forwarder = createForwarder({
      onError: (error: Error, req: IncomingMessage) => logger.warn({ err: error, url: req.url }, 'upstream request failed'),
    });

    const pipeline = {
      identity,
      scorer,
      policy: () => policy.current(),
      router,
      forwarder,
      signer,
      tracer: tracing.tracer,
      logger,
      assertionHeader: config.assertion.header,
      tlsFacts: getTlsFacts,
      now,
      health: () => ({
        status: 'ok',
        store: stores.kind,
        policy: { hash: policy.current().hash, last_reload_error: policy.lastError() },
        model: { version: scorer.modelVersion },
      }),
    };
    const listener = createTlsListener(
      {
        key: await readFile(config.tls.key, 'utf8'),
        cert: await readFile(config.tls.cert, 'utf8'),
        groups: config.tls.groups,
        ...(config.tls.client_ca ? { ca: await readFile(config.tls.client_ca, 'utf8'), requestCert: true } : {}),
        onConnectionError: (error, remote) => logger.debug({ code: error.code, remote: remote.address }, 'connection closed before the TLS handshake'),
      },
      createRequestHandler(pipeline),
      createUpgradeHandler(pipeline) as (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
    );
    const address = await listener.listen(config.listen.port, config.listen.host);
    closers.push(() => listener.close());
    logger.info({ address: address.address, port: address.port, store: stores.kind, policy: policy.current().hash, model: scorer.modelVersion }, 'wardgate started');

    return {
      address,
      storeKind: stores.kind,
      logger,
      close: async () => {
        for (const close of closers.reverse()) await close();
        logger.info('wardgate stopped');
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => {});
    throw error;
  }
}

interface Stores {
  readonly kind: 'redis' | 'memory';
  readonly keyValue: KeyValueStore;
  readonly baselines: MemoryBaselineStore | RedisBaselineStore;
  close(): Promise<void>;
}

async function openStores(config: WardgateConfig, options: StartOptions, logger: Logger): Promise<Stores> {
  if (config.redis.url === 'memory') return memoryStores(logger, 'redis.url is "memory"');

  let redis: Redis;
  try {
    redis = await createRedisClient(config.redis.url);
  } catch (error) {
    if (!options.allowMemoryFallback) throw error;
    return memoryStores(logger, (error as Error).message);
  }
  // ioredis reports every failed reconnect as an 'error' event; requests see the failure
  // through their commands, so one line per outage is enough here.
  let down = false;
  redis.on('error', (error: Error) => {
    if (!down) logger.error({ err: error }, 'Redis connection lost; routes apply their fail mode until it returns');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info('Redis connection restored');
    down = false;
  });

  let peerUpdateFailures = 0;
  const keyValue = await RedisKeyValueStore.connect({ url: config.redis.url, keyPrefix: `${config.redis.key_prefix}kv:`, redis: { ...BASELINE_REDIS_OPTIONS } });
  return {
    kind: 'redis',
    keyValue,
    baselines: new RedisBaselineStore(redis, {
      prefix: `${config.redis.key_prefix}bl:`,
      // Peer-group updates run after each request, so an outage fails many of them: log the
      // first failure and then every thousandth.
      onBackgroundError: (error) => {
        peerUpdateFailures += 1;
        if (peerUpdateFailures % 1000 === 1) logger.warn({ err: error, failures: peerUpdateFailures }, 'updating a peer-group baseline failed');
      },
    }),
    close: async () => {
      await keyValue.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

function memoryStores(logger: Logger, reason: string): Stores {
  logger.warn({ reason }, 'using the in-process store instead of Redis: sessions and baselines are lost on restart and not shared between instances');
  const keyValue = new MemoryKeyValueStore();
  return { kind: 'memory', keyValue, baselines: new MemoryBaselineStore(), close: () => keyValue.close() };
}
