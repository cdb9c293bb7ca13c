import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-node';
import type { IMetricReader } from '@opentelemetry/sdk-metrics';
import type { Logger } from 'pino';
import { createRedisClient, MemoryBaselineStore, RedisBaselineStore, BASELINE_REDIS_OPTIONS, redisConnected, type RedisClient, type Scorer } from '../scorer/index.ts';
import { createAssertionSigner } from './assertion/signer.ts';
import { createOversight } from './break-glass/create.ts';
import type { AuditPort, PolicyPort } from './ports.ts';
import { openConfiguredAuditTrail } from './audit/start.ts';
import { redisTargetOf, type WardgateConfig } from './config/config.ts';
import { SCORER_DEFAULTS } from './config/scorer-config.ts';
import { compilePatientPaths } from '../scorer/features/patient-paths.ts';
import { readRegularFileWithin } from '../scorer/regular-file.ts';
import { createForwarder } from './forward/forwarder.ts';
import { createIdentity } from './identity/identity.ts';
import { createSignInHostCheck } from './identity/sign-in-hosts.ts';
import { identitySessionExtras } from './identity/runtime-options.ts';
import { createRequestHandler } from './pipeline/request-handler.ts';
import { createUpgradeHandler } from './pipeline/upgrade-handler.ts';
import { startPolicies } from './policy-setup.ts';
import { createRouter } from './routing/router.ts';
import type { KeyValueStore } from './state/key-value-store.ts';
import { MemoryKeyValueStore } from './state/memory-key-value-store.ts';
import { RedisKeyValueStore } from './state/redis-key-value-store.ts';
import { createLogger } from './telemetry/logger.ts';
import { startTelemetry } from './telemetry/telemetry.ts';
import { timeAsyncCalls } from './telemetry/timed-calls.ts';
import { createTlsListener, getTlsFacts } from './tls/listener.ts';
import { IDP_FETCH_CHANNEL, type IdpFetchEvent } from './identity/https-fetch.ts';
import { openScorerRuntime } from './scorer-runtime.ts';
import { MAX_CRL_BYTES, watchCrl } from './tls/crl-watch.ts';
import { bearerOptions } from './identity/bearer-config.ts';

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
  /** Interval in milliseconds at which the CRL file (`tls.crl`) is checked for changes; default 1000. */
  readonly crlPollMs?: number;
  /** Replaces the policy file's policy for every request, e.g. a stand-in policy in tests; the file is still loaded and validated. */
  readonly policy?: () => PolicyPort;
  /** Audit trail that receives break-glass claims, accesses under them and notice acknowledgements. */
  readonly audit?: AuditPort;
  /** Called after each audit batch is written: milliseconds from the oldest record's append to the write, and the batch size. */
  readonly onAuditWrite?: (latencyMs: number, records: number) => void;
  /** Extra metric readers, e.g. an in-memory reader in tests. */
  readonly metricReaders?: IMetricReader[];
}

export interface RunningWardgate {
  readonly address: AddressInfo;
  /** `redis` or `memory`. */
  readonly storeKind: 'redis' | 'memory';
  readonly logger: Logger;
  /** Address of the Prometheus endpoint, or null when `telemetry.prometheus` is not configured. */
  readonly prometheusAddress: AddressInfo | null;
  /**
   * Closes every part, even after one fails to close. Logs "wardgate stopped", or at error
   * level "wardgate stopped with errors" and rejects with the first error, for example
   * `WG_AUDIT_WRITE_FAILED` when audit records could not be written.
   */
  close(): Promise<void>;
}

/**
 * Starts Wardgate from a validated configuration: stores, scorer, policy (with hot reload),
 * identity, signer, router, forwarder and the TLS listener.
 */
export async function startWardgate(config: WardgateConfig, options: StartOptions = {}): Promise<RunningWardgate> {
  const patientPaths = compilePatientPaths((config.scorer ?? SCORER_DEFAULTS).patient_paths, 'scorer.patient_paths');
  const telemetry = await startTelemetry({ config: config.telemetry, patientKey: config.patient_key, patientPaths, extraSpanProcessors: options.spanProcessors, extraMetricReaders: options.metricReaders });
  const logger = options.logger ?? createLogger({ redactTarget: telemetry.request.redactor });
  const now = options.now ?? Date.now;
  const closers: Array<() => Promise<unknown> | void> = [() => telemetry.shutdown()];
  telemetry.attachLogger(logger);
  logger.info(telemetry.summary(), 'telemetry configured');

  try {
    const stores = await openStores(config, options, logger);
    closers.push(() => stores.close());

    const policies = await startPolicies(config, logger, options.policyPollMs ?? 1000, (ok) => telemetry.metrics.recordReload('policy', ok));
    const policy = policies.active;
    closers.push(() => policies.close());

    const timeRedis = <T extends object>(store: T): T => (stores.kind === 'redis' ? timeAsyncCalls(store, (ms) => telemetry.metrics.recordLatency('redis', ms)) : store);
    const scoring = await openScorerRuntime(config, timeRedis(stores.baselines), stores.keyValue, logger, { onModelReload: (ok) => telemetry.metrics.recordReload('model', ok) });
    closers.push(() => scoring.close());
    const scorer: Scorer = scoring.scorer;

    const recordIdpLatency = (event: unknown) => telemetry.metrics.recordLatency('idp', (event as IdpFetchEvent).ms);
    IDP_FETCH_CHANNEL.subscribe(recordIdpLatency);
    closers.push(() => IDP_FETCH_CHANNEL.unsubscribe(recordIdpLatency));

    const audit = await openConfiguredAuditTrail(config, {
      now,
      logger,
      onWrite: (latencyMs: number, records: number) => {
        telemetry.metrics.recordAuditWrite(latencyMs);
        options.onAuditWrite?.(latencyMs, records);
      },
    });
    closers.push(() => audit.close());

    const identityExtras = identitySessionExtras(config, logger);
    // A re-check of open WebSockets fails every 30 seconds while Redis is down: log the first
    // failure and then every 20th.
    let recheckFailures = 0;
    const identity = await createIdentity({
      oidc: {
        issuer: config.oidc.issuer,
        client_id: config.oidc.client_id,
        client_secret: config.oidc.client_secret,
        ...(config.oidc.ca ? { ca: await readFile(config.oidc.ca, 'utf8') } : {}),
      },
      session: { idle_timeout_s: config.session.idle_timeout, absolute_lifetime_s: config.session.absolute_lifetime, ...identityExtras.session },
      ...identityExtras.identity,
      store: timeRedis(stores.keyValue),
      now,
      ...(config.bearer ? { bearer: await bearerOptions(config.bearer) } : {}),
      isSignInHost: createSignInHostCheck(config.routes, await readFile(config.tls.cert, 'utf8')),
      onBackgroundError: (error) => {
        recheckFailures += 1;
        if (recheckFailures % 20 === 1) logger.warn({ err: error, failures: recheckFailures }, 'checking the sessions of open WebSockets failed; they are checked again in 30 seconds');
      },
    });
    closers.push(() => identity.close());

    const signer = await createAssertionSigner({ issuer: 'wardgate', ttlSeconds: config.assertion.ttl, ...(config.assertion.algorithm ? { algorithm: config.assertion.algorithm } : {}) });
    const router = createRouter(config.routes);
    const forwarder = createForwarder({
      onError: (error: Error, req: IncomingMessage) => logger.warn({ err: error, url: telemetry.request.redactor?.redactTarget(req.url ?? '') }, 'upstream request failed'),
      onSetCookieDropped: (names: string[], req: IncomingMessage) => logger.warn({ cookies: names, url: telemetry.request.redactor?.redactTarget(req.url ?? '') }, 'dropped upstream Set-Cookie headers for Wardgate cookie names'),
      tracer: telemetry.tracer,
      metrics: telemetry.metrics,
    });

    const oversight = createOversight({ config, store: stores.keyValue, redis: stores.redis, identity, audit: options.audit ?? audit, now, logger });
    const pipeline = {
      identity,
      scorer,
      patientPaths: scoring.patientPaths,
      policy: () => policy.current(),
      shadow: policies.shadow,
      router,
      forwarder,
      signer,
      tracer: telemetry.tracer,
      telemetry: telemetry.request,
      logger,
      assertionHeader: config.assertion.header,
      tlsFacts: getTlsFacts,
      ...(config.listen.trusted_proxies ? { trustedProxies: config.listen.trusted_proxies.proxies } : {}),
      now,
      oversight,
      ...(options.policy ? { policy: options.policy } : {}),
      audit,
      health: () => ({
        status: 'ok',
        store: stores.kind,
        // Routes apply their fail mode while Redis is down, so the process stays up and reports it here.
        ...(stores.kind === 'redis' ? { store_connected: stores.connected() } : {}),
        policy: { hash: policy.current().hash, last_reload_error: policy.lastError() },
        ...(policies.shadow && { shadow_policy: policies.shadowHealth() }),
        model: scoring.modelHealth(),
        care: scoring.careHealth(),
        review: stores.kind === 'redis' ? { failed_writes: oversight.reviewFailures, limited_entries: oversight.reviewLimitedEntries } : { disabled: 'the review queue needs Redis' },
        // The status stays ok while audit writes fail, because a restart would lose the queued records.
        audit: audit.health(),
      }),
    };
    const listener = createTlsListener(
      {
        key: await readFile(config.tls.key, 'utf8'),
        cert: await readFile(config.tls.cert, 'utf8'),
        groups: config.tls.groups,
        ...(config.tls.client_ca ? { ca: await readFile(config.tls.client_ca, 'utf8'), requestCert: true } : {}),
        ...(config.tls.crl ? { crl: (await readRegularFileWithin(config.tls.crl, MAX_CRL_BYTES, { option: 'tls.crl' })).toString('utf8') } : {}),
        onConnectionError: (error, remote) => logger.debug({ code: error.code, remote: remote.address }, 'connection closed before the TLS handshake'),
      },
      createRequestHandler(pipeline),
      createUpgradeHandler(pipeline) as (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
    );
    const address = await listener.listen(config.listen.port, config.listen.host);
    closers.push(() => listener.close());
    if (config.tls.crl) {
      const crlWatcher = watchCrl(config.tls.crl, listener, (event) => {
        if (event.ok) logger.info({ file: event.file, bytes: event.bytes }, 'client certificate CRL reloaded');
        else logger.error({ file: event.file, err: event.error }, 'client certificate CRL reload failed; the previous CRL stays in force');
      }, options.crlPollMs ?? 1000);
      closers.push(() => crlWatcher.close());
    }
    logger.info({ address: address.address, port: address.port, store: stores.kind, policy: policy.current().hash, model: scorer.modelVersion }, 'wardgate started');

    return {
      address,
      storeKind: stores.kind,
      logger,
      prometheusAddress: telemetry.prometheus?.address ?? null,
      close: async () => {
        const errors: unknown[] = [];
        for (const close of closers.reverse()) {
          try {
            await close();
          } catch (error) {
            errors.push(error);
          }
        }
        if (errors.length > 0) {
          logger.error({ err: errors[0], ...(errors.length > 1 && { other_errors: errors.slice(1).map(String) }) }, 'wardgate stopped with errors');
          throw errors[0];
        }
        logger.info('wardgate stopped');
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => {});
    throw error;
  }
}

/**
 * ioredis options added to both clients of the request path (baselines and review queue, and
 * the key-value store of sessions and break-glass grants). With auto-pipelining, the commands
 * that concurrent requests issue in one turn of the event loop leave in one socket write
 * instead of one write each, which saves system calls here and reads in Redis (figures in
 * docs/benchmarks.md). Each command still gets its own reply, error and `commandTimeout`, and
 * the order of commands on a connection is unchanged. While one such batch awaits its replies,
 * new commands wait for it, so a command can take up to about twice `commandTimeout` to fail
 * when Redis stalls. A Cluster client ignores the option (`newRedisClient`).
 */
const REQUEST_PATH_REDIS_OPTIONS = Object.freeze({ enableAutoPipelining: true });

interface Stores {
  readonly kind: 'redis' | 'memory';
  readonly keyValue: KeyValueStore;
  readonly baselines: MemoryBaselineStore | RedisBaselineStore;
  /** The Redis client of the baselines, also used by the review queue; absent for the in-process store. */
  readonly redis?: RedisClient;
  /** Whether the baselines' Redis connection is ready; always true for the in-process store. */
  connected(): boolean;
  close(): Promise<void>;
}

async function openStores(config: WardgateConfig, options: StartOptions, logger: Logger): Promise<Stores> {
  const target = redisTargetOf(config.redis);
  if (target.kind === 'server' && target.url === 'memory') return memoryStores(logger, 'redis.url is "memory"');

  let redis: RedisClient;
  try {
    redis = await createRedisClient(target, REQUEST_PATH_REDIS_OPTIONS);
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
  const keyValue = await RedisKeyValueStore.connect({ target, keyPrefix: `${config.redis.key_prefix}kv:`, redis: { ...BASELINE_REDIS_OPTIONS, ...REQUEST_PATH_REDIS_OPTIONS } });
  return {
    kind: 'redis',
    keyValue,
    redis,
    connected: () => redisConnected(redis),
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
  return { kind: 'memory', keyValue, baselines: new MemoryBaselineStore(), connected: () => true, close: () => keyValue.close() };
}
