import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { RedisTarget } from '../../scorer/baselines/redis-client.ts';
import { ConfigError } from './errors.ts';
import { OptionReader } from './reader.ts';
import { checkSharedHostsRouted, readSessionExtras, SESSION_EXTRA_KEYS, type SessionExtras } from './session-options.ts';
import { readPolicyOptions, type PolicySigningConfig } from './policy-options.ts';
import type { RouteConfig } from '../routing/router.ts';
import { readScorerSections, type CareConfig, type ScorerRuntimeConfig } from './scorer-config.ts';
import type { Cidr, TrustedProxies } from '../http/trusted-proxies.ts';
import { ASSERTION_ALGORITHMS, readBearer, readRequiredScopes, readTrustedProxies, type AssertionAlgorithm, type BearerConfig } from './identity-sections.ts';
import { readOversightConfig, type BreakGlassConfig, type NotifyConfig, type ReviewConfig } from '../break-glass/config.ts';
import { readAuditConfig, type AuditConfig } from '../audit/config.ts';
import { readTelemetryConfig, type TelemetryConfig } from '../telemetry/config.ts';

export type { FailMode, RouteConfig } from '../routing/router.ts';

export interface WardgateConfig {
  readonly listen: {
    readonly host: string;
    readonly port: number;
    /** CIDR ranges whose X-Forwarded-For, -Host and -Proto are believed; see proxy/http/trusted-proxies.ts. */
    readonly trusted_proxies?: { readonly ranges: readonly Cidr[]; readonly proxies: TrustedProxies };
  };
  /** `crl` is a PEM CRL file for client certificates, reloaded when it changes. */
  readonly tls: { readonly cert: string; readonly key: string; readonly client_ca?: string; readonly groups: string; readonly crl?: string };
  /**
   * `url` is one Redis server, or `memory` for the in-process store (a single instance only).
   * `cluster` (seed node URLs) or `sentinel` (Sentinel URLs and the master's name) replace it.
   */
  readonly redis: {
    readonly url: string;
    readonly key_prefix: string;
    readonly cluster?: readonly string[];
    readonly sentinel?: { readonly nodes: readonly string[]; readonly master: string };
  };
  readonly oidc: {
    readonly issuer: string;
    readonly client_id: string;
    readonly client_secret: string;
    /** PEM file of a CA to trust for the IdP's TLS, in addition to the system roots. */
    readonly ca?: string;
  };
  readonly session: { readonly idle_timeout: number; readonly absolute_lifetime: number } & SessionExtras;
  readonly policy: string;
  readonly model: string;
  /** HMAC key for patient pseudonyms, base64 or hex; taken from the environment variable named here. */
  readonly patient_key: Buffer;
  readonly assertion: { readonly header: string; readonly ttl: number; readonly algorithm?: AssertionAlgorithm };
  /** Trusted issuers of bearer access tokens; absent means bearer tokens are rejected. */
  readonly bearer?: BearerConfig;
  readonly routes: readonly RouteConfig[];
  /** Inference batching, deadline and model reload; defaults apply when absent. */
  readonly scorer?: ScorerRuntimeConfig;
  /** Care-relationship source; `none` when absent. */
  readonly care?: CareConfig;
  /** Review queue; defaults apply when absent. */
  readonly review?: ReviewConfig;
  /** Break-glass claims; defaults apply when absent. */
  readonly break_glass?: BreakGlassConfig;
  /** The `notify` action's notice; defaults apply when absent. */
  readonly notify?: NotifyConfig;
  /** Candidate policy evaluated beside `policy` on live traffic without enforcing (shadow mode). */
  readonly shadow_policy?: string;
  /** Signature requirement for `policy` and `shadow_policy`. */
  readonly policy_signing?: PolicySigningConfig;
  /** The audit trail; absent in configurations built in code, which then get the defaults under `.wardgate/audit`. */
  readonly audit?: AuditConfig;
  /** Trusted hops for trace context and the Prometheus endpoint; absent means the defaults. */
  readonly telemetry?: TelemetryConfig;
}

const TOP_LEVEL = ['listen', 'tls', 'redis', 'oidc', 'session', 'policy', 'model', 'patient_key_env', 'assertion', 'routes', 'scorer', 'care', 'bearer', 'review', 'break_glass', 'notify', 'shadow_policy', 'policy_signing', 'audit', 'telemetry'] as const;
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Loads and validates a Wardgate configuration file. Relative file paths inside it are
 * resolved against the file's folder. Secrets are read from the environment variables the
 * file names, never from the file itself.
 *
 * @throws ConfigError listing every problem with `file:line:column`.
 */
export async function loadConfigFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  options: { readonly files?: readonly ConfiguredFile[] } = {},
): Promise<WardgateConfig> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError([{ file, line: 1, column: 1, option: '(file)', message: `cannot read the configuration file (${reason}); check the --config path` }]);
  }
  if (bytes.length > MAX_CONFIG_BYTES) {
    throw new ConfigError([{ file, line: 1, column: 1, option: '(file)', message: `file is ${bytes.length} bytes, above the limit of ${MAX_CONFIG_BYTES}` }]);
  }
  const text = decodeUtf8(bytes, file);
  const config = parseConfig(text, file, env);
  await checkFilesExist(config, text, file, options.files ?? ALL_CONFIGURED_FILES);
  return config;
}

/** Rejects bytes that are not UTF-8 with the line and column of the first bad byte. */
function decodeUtf8(bytes: Buffer, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const before = bytes.subarray(0, offset);
    const line = before.filter((byte) => byte === 0x0a).length + 1;
    const column = offset - before.lastIndexOf(0x0a);
    const value = bytes[offset] ?? 0;
    throw new ConfigError([{ file, line, column, option: '(file)', message: `byte 0x${value.toString(16).padStart(2, '0')} is not valid UTF-8; save the file as UTF-8` }]);
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence. */
function firstInvalidUtf8(bytes: Buffer): number {
  let index = 0;
  while (index < bytes.length) {
    const length = utf8SequenceLength(bytes[index]!);
    if (length === 0 || index + length > bytes.length) return index;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(index, index + length));
    } catch {
      return index;
    }
    index += length;
  }
  return bytes.length;
}

/** Options naming files that `loadConfigFile` checks are readable. */
export type ConfiguredFile = 'tls.cert' | 'tls.key' | 'tls.client_ca' | 'tls.crl' | 'oidc.ca' | 'policy' | 'model';
const ALL_CONFIGURED_FILES: readonly ConfiguredFile[] = ['tls.cert', 'tls.key', 'tls.client_ca', 'tls.crl', 'oidc.ca', 'policy', 'model'];

/** Returns how many bytes a UTF-8 sequence starting with `lead` has, or 0 for a byte that cannot start one. */
function utf8SequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/** Reports every configured file that cannot be read, with the option that names it. */
async function checkFilesExist(config: WardgateConfig, text: string, file: string, checked: readonly ConfiguredFile[]): Promise<void> {
  const paths: Record<ConfiguredFile, string | undefined> = {
    'tls.cert': config.tls.cert,
    'tls.key': config.tls.key,
    'tls.client_ca': config.tls.client_ca,
    'tls.crl': config.tls.crl,
    'oidc.ca': config.oidc.ca,
    policy: config.policy,
    model: config.model,
  };
  const files = checked.map((option) => [option, paths[option]] as const);
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines });
  const issues = [];
  for (const [option, target] of files) {
    if (target === undefined) continue;
    try {
      await access(target, constants.R_OK);
      if (!(await stat(target)).isFile()) throw Object.assign(new Error('not a file'), { code: 'a folder, not a file' });
    } catch (error) {
      const node = document.getIn(option.split('.'), true) as Node | undefined;
      const position = node?.range ? lines.linePos(node.range[0]) : { line: 1, col: 1 };
      const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      issues.push({ file, line: position.line, column: position.col, option, message: `cannot read ${target} (${reason}); fix the path (relative paths start at the configuration file's folder)` });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): WardgateConfig {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const reader = new OptionReader(file, lines);
  let hinted = false;
  for (const error of document.errors) {
    const { line, col } = lines.linePos(error.pos[0]);
    let message = error.message.split('\n')[0]!;
    if (error.code === 'DUPLICATE_KEY') {
      const key = /^[^:\n]*/.exec(text.slice(error.pos[0]))?.[0].trim() ?? '';
      message = `key ${JSON.stringify(key)} appears twice in the same section; keep one`;
    } else if (!hinted && error.code === 'MISSING_CHAR' && message.includes('flow sequence') && lineAt(text, error.pos[0]).includes('{')) {
      // An unquoted path template in a flow list, such as [/patients/{id}], reads as a map.
      message += `; quote each value that holds { or } inside [ ], such as ['/patients/{id}'], or write one "- value" line per item`;
      hinted = true;
    }
    reader.issues.push({ file, line, column: col, option: '(yaml)', message });
  }
  if (reader.issues.length > 0) throw new ConfigError(reader.issues);

  const base = path.dirname(path.resolve(file));
  const resolve = (value: string) => path.resolve(base, value);
  const top = reader.map(document.contents as Node, '', TOP_LEVEL) ?? new Map<string, Node>();

  const listen = reader.map(top.get('listen') ?? emptyMap(), 'listen', ['host', 'port', 'trusted_proxies']) ?? new Map();
  const tls = reader.map(top.get('tls'), 'tls', ['cert', 'key', 'client_ca', 'groups', 'crl']) ?? new Map();
  const redis = reader.map(top.get('redis') ?? emptyMap(), 'redis', ['url', 'key_prefix', 'cluster', 'sentinel']) ?? new Map();
  const oidc = reader.map(top.get('oidc'), 'oidc', ['issuer', 'client_id', 'client_secret_env', 'ca']) ?? new Map();
  const session = reader.map(top.get('session') ?? emptyMap(), 'session', ['idle_timeout', 'absolute_lifetime', ...SESSION_EXTRA_KEYS]) ?? new Map();
  const assertion = reader.map(top.get('assertion') ?? emptyMap(), 'assertion', ['header', 'ttl', 'algorithm']) ?? new Map();

  const secretVariable = reader.string(oidc.get('client_secret_env'), 'oidc.client_secret_env', 'WARDGATE_OIDC_CLIENT_SECRET');
  const clientSecret = env[secretVariable];
  if (!clientSecret) {
    reader.report(oidc.get('client_secret_env') ?? top.get('oidc'), 'oidc.client_secret_env', `environment variable ${secretVariable} is not set; export it with the client secret registered at the IdP`);
  }
  const patientVariable = reader.string(top.get('patient_key_env'), 'patient_key_env', 'WARDGATE_PATIENT_KEY');
  const patientKey = decodeKey(env[patientVariable]);
  if (!patientKey) {
    reader.report(top.get('patient_key_env') ?? null, 'patient_key_env', `environment variable ${patientVariable} must hold at least 32 bytes as hex or base64; generate one with: openssl rand -hex 32`);
  }

  const config: WardgateConfig = {
    listen: {
      host: reader.string(listen.get('host'), 'listen.host', '127.0.0.1'),
      port: reader.integer(listen.get('port'), 'listen.port', 0, 65535, 8443),
      ...optionalEntry('trusted_proxies', readTrustedProxies(reader, listen.get('trusted_proxies'))),
    },
    tls: {
      cert: resolve(reader.string(tls.get('cert'), 'tls.cert')),
      key: resolve(reader.string(tls.get('key'), 'tls.key')),
      client_ca: optionalPath(reader.optionalString(tls.get('client_ca'), 'tls.client_ca'), resolve),
      groups: reader.string(tls.get('groups'), 'tls.groups', 'X25519MLKEM768:X25519:P-256'),
      ...optionalEntry('crl', optionalPath(reader.optionalString(tls.get('crl'), 'tls.crl'), resolve)),
    },
    redis: {
      url: reader.string(redis.get('url'), 'redis.url', env.REDIS_URL ?? 'redis://127.0.0.1:6379'),
      key_prefix: reader.string(redis.get('key_prefix'), 'redis.key_prefix', 'wg:'),
      ...readRedisTopology(reader, redis),
    },
    oidc: {
      issuer: reader.string(oidc.get('issuer'), 'oidc.issuer'),
      client_id: reader.string(oidc.get('client_id'), 'oidc.client_id'),
      client_secret: clientSecret ?? '',
      ca: optionalPath(reader.optionalString(oidc.get('ca'), 'oidc.ca'), resolve),
    },
    session: {
      idle_timeout: reader.integer(session.get('idle_timeout'), 'session.idle_timeout', 60, 86_400, 1800),
      absolute_lifetime: reader.integer(session.get('absolute_lifetime'), 'session.absolute_lifetime', 300, 7 * 86_400, 12 * 3600),
      ...readSessionExtras(reader, session, env),
    },
    policy: resolve(reader.string(top.get('policy'), 'policy')),
    model: resolve(reader.string(top.get('model'), 'model')),
    patient_key: patientKey ?? Buffer.alloc(0),
    assertion: {
      header: reader.string(assertion.get('header'), 'assertion.header', 'X-Wardgate-Assertion').toLowerCase(),
      ttl: reader.integer(assertion.get('ttl'), 'assertion.ttl', 10, 600, 60),
      algorithm: reader.oneOf(assertion.get('algorithm'), 'assertion.algorithm', ASSERTION_ALGORITHMS, 'ES256'),
    },
    ...optionalEntry('bearer', readBearer(reader, top.get('bearer'), resolve)),
    routes: readRoutes(reader, top.get('routes')),
    ...readScorerSections(reader, top.get('scorer'), top.get('care'), resolve),
    ...readOversightConfig(reader, top),
    ...readPolicyOptions(reader, top, resolve),
    audit: readAuditConfig(reader, top.get('audit') ?? emptyMap(), resolve),
  };
  const withTelemetry: WardgateConfig = { ...config, telemetry: readTelemetryConfig(reader, top.get('telemetry'), config.listen) };

  if (config.tls.crl !== undefined && config.tls.client_ca === undefined) {
    reader.report(tls.get('crl'), 'tls.crl', 'a CRL applies only to client certificates; set tls.client_ca as well, or remove tls.crl');
  }
  checkSharedHostsRouted(reader, session, config.session, config.routes.map((route) => route.host));
  if (reader.issues.length > 0) throw new ConfigError(reader.issues);
  return withTelemetry;
}

function readRoutes(reader: OptionReader, node: Node | undefined): RouteConfig[] {
  const routes: RouteConfig[] = [];
  const seen = new Set<string>();
  const items = reader.list(node, 'routes');
  if (node !== undefined && items.length === 0) reader.report(node, 'routes', 'expected at least one route');

  items.forEach((item, index) => {
    const option = `routes[${index}]`;
    const fields = reader.map(item, option, ['id', 'host', 'path_prefix', 'upstream', 'sensitivity', 'fail_mode', 'public', 'require_pq', 'required_scopes']);
    if (!fields) return;
    const id = reader.string(fields.get('id'), `${option}.id`);
    if (seen.has(id)) reader.report(fields.get('id'), `${option}.id`, `duplicate route id "${id}"; route ids must be unique`);
    seen.add(id);

    const upstream = reader.string(fields.get('upstream'), `${option}.upstream`);
    if (upstream && !/^https?:\/\/[^/]+/.test(upstream)) {
      reader.report(fields.get('upstream'), `${option}.upstream`, `expected an http:// or https:// URL, got ${JSON.stringify(upstream)}`);
    }
    const pathPrefix = reader.string(fields.get('path_prefix'), `${option}.path_prefix`, '/');
    if (!pathPrefix.startsWith('/')) reader.report(fields.get('path_prefix'), `${option}.path_prefix`, `expected a path starting with "/", got ${JSON.stringify(pathPrefix)}`);

    const failModes = reader.map(fields.get('fail_mode') ?? emptyMap(), `${option}.fail_mode`, ['redis', 'scorer', 'idp']) ?? new Map();
    const modes = ['closed', 'open'] as const;
    routes.push({
      id,
      host: reader.string(fields.get('host'), `${option}.host`, '*').toLowerCase(),
      path_prefix: pathPrefix,
      upstream,
      sensitivity: reader.oneOf(fields.get('sensitivity'), `${option}.sensitivity`, ['low', 'normal', 'high'], 'normal'),
      fail_mode: {
        redis: reader.oneOf(failModes.get('redis'), `${option}.fail_mode.redis`, modes, 'closed'),
        scorer: reader.oneOf(failModes.get('scorer'), `${option}.fail_mode.scorer`, modes, 'closed'),
        idp: reader.oneOf(failModes.get('idp'), `${option}.fail_mode.idp`, modes, 'closed'),
      },
      public: reader.boolean(fields.get('public'), `${option}.public`, false),
      require_pq: reader.boolean(fields.get('require_pq'), `${option}.require_pq`, false),
      ...optionalEntry('required_scopes', readRequiredScopes(reader, fields.get('required_scopes'), `${option}.required_scopes`)),
    });
  });
  return routes;
}

/** Decodes a key given as hex or base64; returns null when absent or shorter than 32 bytes. */
export function decodeKey(text: string | undefined): Buffer | null {
  if (!text) return null;
  const trimmed = text.trim();
  const bytes = /^[0-9a-fA-F]+$/.test(trimmed) && trimmed.length % 2 === 0 ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  return bytes.length >= 32 ? bytes : null;
}

function optionalPath(value: string | undefined, resolve: (value: string) => string): string | undefined {
  return value === undefined ? undefined : resolve(value);
}

/** Returns `{ [key]: value }`, or nothing when `value` is undefined, for optional fields. */
function optionalEntry<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Stands in for an optional section that is absent, so that its defaults apply. */
function emptyMap(): Node {
  return parseDocument('{}').contents as Node;
}

/** Returns the line of `text` that contains the character at `offset`. */
function lineAt(text: string, offset: number): string {
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  const end = text.indexOf('\n', offset);
  return text.slice(start, end === -1 ? text.length : end);
}

/** Returns where the configuration's Redis is: one server, a Cluster or a Sentinel-managed master. */
export function redisTargetOf(redis: WardgateConfig['redis']): RedisTarget {
  if (redis.cluster !== undefined) return { kind: 'cluster', nodes: redis.cluster };
  if (redis.sentinel !== undefined) return { kind: 'sentinel', nodes: redis.sentinel.nodes, master: redis.sentinel.master };
  return { kind: 'server', url: redis.url };
}

/** Reads `redis.cluster` or `redis.sentinel`, each of which replaces `redis.url`. */
function readRedisTopology(reader: OptionReader, redis: Map<string, Node>): Pick<WardgateConfig['redis'], 'cluster' | 'sentinel'> {
  const clusterNode = redis.get('cluster');
  const sentinelNode = redis.get('sentinel');
  const chosen = ['url', 'cluster', 'sentinel'].filter((key) => redis.has(key));
  if (chosen.length > 1) {
    reader.report(clusterNode ?? sentinelNode, 'redis', `set one of url, cluster and sentinel, got ${chosen.join(' and ')}`);
    return {};
  }

  const urlNode = redis.get('url');
  const url = urlNode === undefined ? undefined : reader.string(urlNode, 'redis.url');
  if (url !== undefined && url !== '' && url !== 'memory' && !isRedisUrl(url)) {
    reader.report(urlNode, 'redis.url', `expected a redis:// or rediss:// URL with a host, or "memory", got a value with ${schemeOf(url)}`);
  }
  if (clusterNode !== undefined) return { cluster: readRedisUrls(reader, clusterNode, 'redis.cluster') };
  if (sentinelNode === undefined) return {};
  const sentinel = reader.map(sentinelNode, 'redis.sentinel', ['nodes', 'master']) ?? new Map<string, Node>();
  if (!sentinel.has('master')) reader.report(sentinelNode, 'redis.sentinel.master', 'missing; set the master name that the Sentinels monitor, such as "mymaster"');
  const master = sentinel.has('master') ? reader.string(sentinel.get('master'), 'redis.sentinel.master') : '';
  if (master !== '' && !/^[A-Za-z0-9._-]{1,128}$/.test(master)) {
    reader.report(sentinel.get('master'), 'redis.sentinel.master', `expected the master name that the Sentinels monitor (letters, digits, ".", "_" or "-"), got ${JSON.stringify(master.slice(0, 40))}`);
  }
  return { sentinel: { nodes: readRedisUrls(reader, sentinel.get('nodes'), 'redis.sentinel.nodes'), master } };
}

function readRedisUrls(reader: OptionReader, node: Node | undefined, option: string): string[] {
  if (node === undefined) {
    reader.report(null, option, 'missing; list the redis:// or rediss:// URLs of the nodes, such as ["redis://10.0.0.5:6379"]');
    return [];
  }
  const items = reader.list(node, option);
  if (isSeq(node) && items.length === 0) reader.report(node, option, 'expected at least one redis:// or rediss:// URL, got an empty list');
  const urls = items.map((item, index) => {
    const url = reader.string(item, `${option}[${index}]`);
    if (url !== '' && !isRedisUrl(url)) reader.report(item, `${option}[${index}]`, `expected a redis:// or rediss:// URL with a host, got a value with ${schemeOf(url)}`);
    return url;
  });
  const schemes = new Set(urls.map((url) => URL.parse(url)?.protocol).filter((scheme) => scheme === 'redis:' || scheme === 'rediss:'));
  if (schemes.size > 1) reader.report(node, option, 'expected the same scheme, redis:// or rediss://, for every node');
  return urls;
}

function isRedisUrl(url: string): boolean {
  const parsed = URL.parse(url);
  return parsed !== null && (parsed.protocol === 'redis:' || parsed.protocol === 'rediss:') && parsed.hostname !== '' && url.startsWith(`${parsed.protocol}//`);
}

/** Returns only the scheme of a value meant as a URL, because the rest may carry a password. */
function schemeOf(url: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? 'no scheme';
}
