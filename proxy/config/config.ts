import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, type Node } from 'yaml';
import { ConfigError } from './errors.ts';
import { OptionReader } from './reader.ts';
import type { RouteConfig } from '../routing/router.ts';
import { readTelemetryConfig, type TelemetryConfig } from '../telemetry/config.ts';

export type { FailMode, RouteConfig } from '../routing/router.ts';

export interface WardgateConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly tls: { readonly cert: string; readonly key: string; readonly client_ca?: string; readonly groups: string };
  /** `memory` selects the in-process store, for a single instance only. */
  readonly redis: { readonly url: string; readonly key_prefix: string };
  readonly oidc: {
    readonly issuer: string;
    readonly client_id: string;
    readonly client_secret: string;
    /** PEM file of a CA to trust for the IdP's TLS, in addition to the system roots. */
    readonly ca?: string;
  };
  readonly session: { readonly idle_timeout: number; readonly absolute_lifetime: number };
  readonly policy: string;
  readonly model: string;
  /** HMAC key for patient pseudonyms, base64 or hex; taken from the environment variable named here. */
  readonly patient_key: Buffer;
  readonly assertion: { readonly header: string; readonly ttl: number };
  readonly routes: readonly RouteConfig[];
  /** Trusted hops for trace context and the Prometheus endpoint; absent means the defaults. */
  readonly telemetry?: TelemetryConfig;
}

const TOP_LEVEL = ['listen', 'tls', 'redis', 'oidc', 'session', 'policy', 'model', 'patient_key_env', 'assertion', 'routes', 'telemetry'] as const;
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Loads and validates a Wardgate configuration file. Relative file paths inside it are
 * resolved against the file's folder. Secrets are read from the environment variables the
 * file names, never from the file itself.
 *
 * @throws ConfigError listing every problem with `file:line:column`.
 */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<WardgateConfig> {
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
  return parseConfig(bytes.toString('utf8'), file, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): WardgateConfig {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const reader = new OptionReader(file, lines);
  for (const error of document.errors) {
    const { line, col } = lines.linePos(error.pos[0]);
    reader.issues.push({ file, line, column: col, option: '(yaml)', message: error.message.split('\n')[0]! });
  }
  if (reader.issues.length > 0) throw new ConfigError(reader.issues);

  const base = path.dirname(path.resolve(file));
  const resolve = (value: string) => path.resolve(base, value);
  const top = reader.map(document.contents as Node, '', TOP_LEVEL) ?? new Map<string, Node>();

  const listen = reader.map(top.get('listen') ?? emptyMap(), 'listen', ['host', 'port']) ?? new Map();
  const tls = reader.map(top.get('tls'), 'tls', ['cert', 'key', 'client_ca', 'groups']) ?? new Map();
  const redis = reader.map(top.get('redis') ?? emptyMap(), 'redis', ['url', 'key_prefix']) ?? new Map();
  const oidc = reader.map(top.get('oidc'), 'oidc', ['issuer', 'client_id', 'client_secret_env', 'ca']) ?? new Map();
  const session = reader.map(top.get('session') ?? emptyMap(), 'session', ['idle_timeout', 'absolute_lifetime']) ?? new Map();
  const assertion = reader.map(top.get('assertion') ?? emptyMap(), 'assertion', ['header', 'ttl']) ?? new Map();

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
    },
    tls: {
      cert: resolve(reader.string(tls.get('cert'), 'tls.cert')),
      key: resolve(reader.string(tls.get('key'), 'tls.key')),
      client_ca: optionalPath(reader.optionalString(tls.get('client_ca'), 'tls.client_ca'), resolve),
      groups: reader.string(tls.get('groups'), 'tls.groups', 'X25519MLKEM768:X25519:P-256'),
    },
    redis: {
      url: reader.string(redis.get('url'), 'redis.url', env.REDIS_URL ?? 'redis://127.0.0.1:6379'),
      key_prefix: reader.string(redis.get('key_prefix'), 'redis.key_prefix', 'wg:'),
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
    },
    policy: resolve(reader.string(top.get('policy'), 'policy')),
    model: resolve(reader.string(top.get('model'), 'model')),
    patient_key: patientKey ?? Buffer.alloc(0),
    assertion: {
      header: reader.string(assertion.get('header'), 'assertion.header', 'X-Wardgate-Assertion').toLowerCase(),
      ttl: reader.integer(assertion.get('ttl'), 'assertion.ttl', 10, 600, 60),
    },
    routes: readRoutes(reader, top.get('routes')),
  };
  const withTelemetry: WardgateConfig = { ...config, telemetry: readTelemetryConfig(reader, top.get('telemetry'), config.listen) };

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
    const fields = reader.map(item, option, ['id', 'host', 'path_prefix', 'upstream', 'sensitivity', 'fail_mode', 'public', 'require_pq']);
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

/** Stands in for an optional section that is absent, so that its defaults apply. */
function emptyMap(): Node {
  return parseDocument('{}').contents as Node;
}
