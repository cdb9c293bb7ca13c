import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { describeRedisTarget, newRedisClient, type RedisClient, type RedisTarget } from '../../scorer/baselines/redis-client.ts';
import { parse } from 'yaml';
import { DEFAULT_OVERSIGHT_CONFIG } from '../break-glass/config.ts';
import { parseOptions, usageError } from '../cli/commands.ts';
import { SessionStore } from '../identity/session-store.ts';
import { defaultAuditConfig } from '../audit/config.ts';
import { AuditError } from '../audit/errors.ts';
import { openAuditTrail, type AuditTrail } from '../audit/writer.ts';
import type { AuditEntry, AuditPort } from '../ports.ts';
import { RedisKeyValueStore } from '../state/redis-key-value-store.ts';
import { patternOf, type ReviewEntry } from './entry.ts';
import { ReviewError } from './errors.ts';
import { BenignPatterns, ReviewQueue, type LabelRecord, type StoredReviewEntry } from './queue.ts';

const USAGE = `Usage: wardgate review list|show|label [options]

  list                      List pending entries: id, time, user, route, action, risk, rule
  show ID                   Print one entry with its explanation and label, as JSON
  label ID benign|misuse --note TEXT --analyst NAME [--revoke]
                            Label an entry and acknowledge it for the "analysts" group.
                            benign: the user's pattern (route and top features) is not
                            flagged again for review.benign_ttl seconds.
                            misuse --revoke: also end every session of the entry's user.

Options:
  --config FILE             Read the redis section and review.benign_ttl from FILE
  --redis URL --prefix P    Or name Redis and the key prefix directly (default prefix "wg:")
  --audit-dir DIR           With --redis: also write labels to the audit trail in DIR
                            (--config takes the folder from audit.dir)
`;

export interface ReviewCommandDependencies {
  /** Ends every session of a subject and returns how many ended. */
  readonly revokeSessions?: (subject: string) => Promise<number>;
  /** Receives the label record in place of the audit trail in the audit folder. */
  readonly audit?: AuditPort;
  /** Opens the audit trail in the audit folder. Defaults to `openAuditTrail`, which tests wrap. */
  readonly openAuditTrail?: typeof openAuditTrail;
  readonly now?: () => number;
}

interface Target {
  readonly redis: RedisTarget;
  readonly prefix: string;
  readonly benignTtl: number;
  /** Audit trail folder and key folder for label records; from `audit:` or `--audit-dir`. */
  readonly audit?: { readonly dir: string; readonly keyDir: string };
}

/** Runs `wardgate review ...` and returns the exit code: 0 success, 1 failure, 2 usage error. */
export async function runReviewCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream, deps: ReviewCommandDependencies = {}): Promise<number> {
  const parsed = parseOptions(argv, { config: 'string', redis: 'string', prefix: 'string', 'audit-dir': 'string', note: 'string', analyst: 'string', revoke: 'boolean', help: 'boolean' });
  if ('error' in parsed) return usageError(err, `${parsed.error}; run "wardgate review --help"`);
  const { options, positional } = parsed;
  if (options.help || positional[0] === 'help') {
    out.write(USAGE);
    return 0;
  }
  const [action, id, label, ...extra] = positional;
  if (action !== 'list' && action !== 'show' && action !== 'label') {
    return usageError(err, `unknown review subcommand ${JSON.stringify(action ?? '')}; expected list, show or label`);
  }
  const OPERAND_COUNT = { list: 0, show: 1, label: 2 } as const;
  const expected = OPERAND_COUNT[action];
  const operands = [id, label, ...extra].filter((value) => value !== undefined);
  if (operands.length < expected) return usageError(err, action === 'show' ? 'missing entry id; usage: wardgate review show ID' : `missing ${id === undefined ? 'entry id and label' : 'label'}; usage: wardgate review label ID benign|misuse --note TEXT --analyst NAME`);
  if (operands.length > expected) return usageError(err, `unexpected argument ${JSON.stringify(operands[expected])}; run "wardgate review --help"`);
  if (action === 'label') {
    if (label !== 'benign' && label !== 'misuse') return usageError(err, `invalid label ${JSON.stringify(label)}; use benign or misuse`);
    if (typeof options.note !== 'string' || options.note.trim() === '') return usageError(err, 'missing --note TEXT saying why the access was benign or misuse');
    if (typeof options.analyst !== 'string' || options.analyst.trim() === '') return usageError(err, 'missing --analyst NAME');
    if (options.revoke && label !== 'misuse') return usageError(err, '--revoke applies only to a misuse label');
  }

  let target: Target;
  try {
    target = await resolveTarget(options);
  } catch (error) {
    if (error instanceof ReviewError) return usageError(err, error.message);
    throw error;
  }

  let redis: RedisClient;
  try {
    redis = newRedisClient(target.redis, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, enableOfflineQueue: false, retryStrategy: () => null });
  } catch (error) {
    return usageError(err, (error as Error).message);
  }
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    err.write(`wardgate: ${describeRedisTarget(target.redis)} did not respond (${(error as Error).message}); check --redis or the redis section of the configuration\n`);
    return 1;
  }

  const queue = new ReviewQueue(redis, { prefix: target.prefix, maxLength: DEFAULT_OVERSIGHT_CONFIG.review.stream_max_length });
  const consumer = `cli-${typeof options.analyst === 'string' ? options.analyst : userInfo().username}`;
  try {
    if (action === 'list') {
      writeList(out, await queue.pending(consumer));
    } else if (action === 'show') {
      out.write(`${JSON.stringify(await queue.get(id!), null, 2)}\n`);
    } else {
      return await labelEntry(queue, new BenignPatterns(redis, target.prefix), target, { id: id!, label: label as 'benign' | 'misuse', note: String(options.note), analyst: String(options.analyst), revoke: options.revoke === true, consumer }, out, err, deps);
    }
    return 0;
  } catch (error) {
    if (error instanceof ReviewError) {
      err.write(`wardgate: ${error.message}\n`);
      return 1;
    }
    err.write(`wardgate: review ${action} failed: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

async function labelEntry(
  queue: ReviewQueue,
  patterns: BenignPatterns,
  target: Target,
  request: { id: string; label: 'benign' | 'misuse'; note: string; analyst: string; revoke: boolean; consumer: string },
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  deps: ReviewCommandDependencies,
): Promise<number> {
  const revokeSessions = request.revoke ? deps.revokeSessions ?? (await defaultRevokeSessions(target)) : undefined;
  if (request.revoke && !revokeSessions) {
    err.write('wardgate: --revoke is not available: this build has no SessionStore.revokeSubject; label without --revoke and end the sessions at the IdP\n');
    return 1;
  }

  // An unknown or labelled entry fails here, before the trail gets a file with nothing in it.
  await queue.unlabelled(request.id);

  // The trail is opened, and its lock taken, before anything changes, so that no label or
  // revocation happens that the trail cannot record.
  let trail: AuditTrail | undefined;
  if (deps.audit === undefined && target.audit !== undefined) {
    try {
      trail = await openLabelTrail(target.audit, deps.openAuditTrail ?? openAuditTrail);
    } catch (error) {
      err.write(describeUnopenedTrail(error, request.revoke));
      return 1;
    }
  } else if (deps.audit === undefined) {
    err.write('wardgate: the label is kept in Redis only; pass --config or --audit-dir to also write it to the audit trail\n');
  }

  const now = (deps.now ?? Date.now)();
  let saved: Awaited<ReturnType<ReviewQueue['saveLabel']>>;
  try {
    saved = await queue.saveLabel(request.id, request.label, request.note, request.analyst, now);
  } catch (error) {
    await trail?.close().catch(() => {});
    throw error;
  }
  const { stored, label } = saved;
  const entry = stored.entry;

  let revoked: number | undefined;
  let failure: string | undefined;
  try {
    revoked = revokeSessions ? await revokeSessions(entry.user) : undefined;
  } catch (error) {
    failure = `ending the sessions of ${entry.user} for review entry ${stored.id} failed (${(error as Error).message}), and some of them may have ended.`;
  }
  if (failure === undefined) {
    const record = { kind: 'review_label', trace_id: entry.trace_id, entry_id: stored.id, label: label.label, note: label.note, analyst: label.analyst, user: entry.user, route: entry.route, time: now, ...(revoked === undefined ? {} : { revoked_sessions: revoked }) };
    try {
      await writeLabelRecord(record, deps.audit ?? trail, trail, target.audit?.dir);
    } catch (error) {
      failure = `the audit record of the label of review entry ${stored.id} could not be written (${(error as Error).message.replace(/\.$/, '')}).`;
    }
  }
  await trail?.close().catch(() => {});
  if (failure !== undefined) {
    err.write(await undoLabel(queue, label, failure, revoked === undefined ? '' : ` ${revoked} session(s) of ${entry.user} were ended already.`));
    return 1;
  }

  if (label.label === 'benign') {
    await patterns.accept(entry.user, patternOf(entry.route, entry.top_features), target.benignTtl, label);
  }
  await queue.acknowledge(stored.id, request.consumer);

  out.write(`Labelled ${stored.id} ${label.label} (user ${entry.user}, route ${entry.route}).\n`);
  if (label.label === 'benign') out.write(`The pattern ${patternOf(entry.route, entry.top_features)} of ${entry.user} is not flagged again for ${describeDuration(target.benignTtl)}; its blocks and break-glass decisions are still queued.\n`);
  if (revoked !== undefined) out.write(`Revoked ${revoked} session(s) of ${entry.user}.\n`);
  return 0;
}

/**
 * Appends the label record and, for a trail this command opened, closes the trail, which
 * writes and fsyncs it. Throws when the record was not written.
 */
async function writeLabelRecord(record: AuditEntry, port: AuditPort | undefined, trail: AuditTrail | undefined, dir: string | undefined): Promise<void> {
  port?.append(record);
  if (trail === undefined) return;

  await trail.close();
  // The trail retries failed writes and gives up on close without throwing, so only the count shows a lost record.
  if (trail.unwrittenRecords > 0) throw new Error(`${trail.unwrittenRecords} audit record(s) could not be written to ${dir}`);
}

/** Removes a label whose audit record is missing and returns the error message for the analyst. */
async function undoLabel(queue: ReviewQueue, label: LabelRecord, failure: string, revoked: string): Promise<string> {
  let problem: string;
  try {
    if (await queue.removeLabel(label)) {
      return `wardgate: ${failure} The label was removed again, so the entry is still unlabelled.${revoked} Fix the cause and run this command again.\n`;
    }
    problem = 'it was changed meanwhile';
  } catch (error) {
    problem = (error as Error).message;
  }
  const id = label.entry_id;
  return `wardgate: ${failure} The label could not be removed (${problem}), so it exists in Redis without its audit record.${revoked} Check it with "wardgate review show ${id}", delete the Redis key ${queue.labelKey(id)} and run this command again.\n`;
}

/** Returns the message for an audit trail that could not be opened, when nothing has changed yet. */
function describeUnopenedTrail(error: unknown, revoke: boolean): string {
  const code = error instanceof AuditError ? error.code : undefined;
  const message = (error as Error).message;
  // The audit errors end with a fix for the proxy's configuration, which this command replaces.
  const cause = code === 'WG_AUDIT_DIR_LOCKED' || code === 'WG_AUDIT_DIR_UNUSABLE' ? message.split('; ')[0]!.replace(/\.$/, '') : message.replace(/\.$/, '');
  const fix =
    code === 'WG_AUDIT_DIR_LOCKED'
      ? 'Another review command holds the lock; run this command again when it has finished.'
      : code === 'WG_AUDIT_DIR_UNUSABLE'
        ? 'Point --audit-dir or audit.dir at a writable folder and run this command again.'
        : 'Fix the cause and run this command again.';
  return `wardgate: cannot open the audit trail: ${cause}. Nothing was labelled${revoke ? ' and no session was ended' : ''}. ${fix}\n`;
}

async function resolveTarget(options: Record<string, string | boolean>): Promise<Target> {
  if (typeof options.config === 'string' && (options.redis !== undefined || options.prefix !== undefined)) {
    throw new ReviewError('WG_REVIEW_INVALID_OPTION', 'use either --config FILE or --redis URL --prefix P, not both');
  }
  if (typeof options.config === 'string') return readTarget(options.config);
  if (typeof options.redis !== 'string') throw new ReviewError('WG_REVIEW_INVALID_OPTION', 'missing --config FILE or --redis URL; run "wardgate review --help"');
  assertRedisUrl(options.redis, '--redis');
  const auditDir = typeof options['audit-dir'] === 'string' ? path.resolve(options['audit-dir']) : undefined;
  return {
    redis: { kind: 'server', url: options.redis },
    prefix: typeof options.prefix === 'string' ? options.prefix : 'wg:',
    benignTtl: DEFAULT_OVERSIGHT_CONFIG.review.benign_ttl,
    ...(auditDir === undefined ? {} : { audit: { dir: auditDir, keyDir: path.join(auditDir, 'keys') } }),
  };
}

/** Reads only what the review CLI needs, so it runs without the proxy's secrets in the environment. */
async function readTarget(file: string): Promise<Target> {
  let document: unknown;
  try {
    document = parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new ReviewError('WG_REVIEW_INVALID_OPTION', `cannot read the configuration file ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); check the --config path`);
  }
  const top = (typeof document === 'object' && document !== null ? document : {}) as { redis?: { url?: unknown; key_prefix?: unknown; cluster?: unknown; sentinel?: unknown }; review?: { benign_ttl?: unknown }; audit?: { dir?: unknown; key_dir?: unknown } };
  const redis = readRedisTarget(top.redis ?? {}, file);
  const prefix = top.redis?.key_prefix ?? 'wg:';
  const benignTtl = top.review?.benign_ttl ?? DEFAULT_OVERSIGHT_CONFIG.review.benign_ttl;
  if (typeof prefix !== 'string' || prefix === '') throw new ReviewError('WG_REVIEW_INVALID_OPTION', `${file}: redis.key_prefix must be a non-empty string`);
  if (typeof benignTtl !== 'number' || !Number.isInteger(benignTtl) || benignTtl < 60) throw new ReviewError('WG_REVIEW_INVALID_OPTION', `${file}: review.benign_ttl must be an integer of at least 60 seconds`);
  // The audit folders are resolved as the proxy resolves them: against the configuration's folder.
  const base = path.dirname(path.resolve(file));
  const auditDir = path.resolve(base, typeof top.audit?.dir === 'string' ? top.audit.dir : '.wardgate/audit');
  const keyDir = typeof top.audit?.key_dir === 'string' ? path.resolve(base, top.audit.key_dir) : path.join(auditDir, 'keys');
  return { redis, prefix, benignTtl, audit: { dir: auditDir, keyDir } };
}

/** Reads `redis.url`, `redis.cluster` or `redis.sentinel` as the proxy does; `wardgate start` checks them in full. */
function readRedisTarget(redis: { url?: unknown; cluster?: unknown; sentinel?: unknown }, file: string): RedisTarget {
  const urls = (value: unknown, option: string): string[] => {
    if (!Array.isArray(value) || value.length === 0 || !value.every((item) => typeof item === 'string')) {
      throw new ReviewError('WG_REVIEW_INVALID_OPTION', `${file}: ${option} must be a list of redis:// or rediss:// URLs`);
    }
    for (const url of value) assertRedisUrl(url, `${file}: ${option}`);
    return value;
  };
  if (redis.cluster !== undefined) return { kind: 'cluster', nodes: urls(redis.cluster, 'redis.cluster') };
  if (redis.sentinel !== undefined) {
    const sentinel = (typeof redis.sentinel === 'object' && redis.sentinel !== null ? redis.sentinel : {}) as { nodes?: unknown; master?: unknown };
    if (typeof sentinel.master !== 'string' || sentinel.master === '') throw new ReviewError('WG_REVIEW_INVALID_OPTION', `${file}: redis.sentinel.master must be the master name the Sentinels monitor`);
    return { kind: 'sentinel', nodes: urls(sentinel.nodes, 'redis.sentinel.nodes'), master: sentinel.master };
  }

  const url = redis.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (typeof url !== 'string') throw new ReviewError('WG_REVIEW_INVALID_OPTION', `${file}: redis.url must be a string`);
  if (url === 'memory') throw new ReviewError('WG_REVIEW_INVALID_OPTION', `${file}: redis.url is "memory", and the in-process store has no review queue`);
  assertRedisUrl(url, `${file}: redis.url`);
  return { kind: 'server', url };
}

function assertRedisUrl(url: string, option: string): void {
  // A malformed URL may still carry a password, so only its scheme is echoed.
  if (!/^rediss?:\/\/[^/]/.test(url)) throw new ReviewError('WG_REVIEW_INVALID_OPTION', `${option} must be a redis:// or rediss:// URL, received a value with ${/^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? 'no scheme'}`);
}

/**
 * Opens the audit trail for label records: its own chain (`review_<host>`) in the proxy's
 * audit folder. Its lock is not the lock of a running instance, so labelling does not wait for one.
 */
function openLabelTrail(folders: NonNullable<Target['audit']>, open: typeof openAuditTrail): Promise<AuditTrail> {
  const defaults = defaultAuditConfig(folders.dir);
  return open({
    dir: folders.dir,
    keyDir: folders.keyDir,
    instanceId: `review_${defaults.instance_id}`.slice(0, 64),
    checkpointEvery: 1,
    checkpointIntervalMs: defaults.checkpoint_interval * 1000,
    maxFileBytes: defaults.max_file_bytes,
    fsyncIntervalMs: defaults.fsync_interval,
    // Label records carry pseudonymised paths already; the key only guards raw patient fields.
    patientKey: randomBytes(32),
  });
}

/** Ends sessions through `SessionStore.revokeSubject` when this build has it. */
async function defaultRevokeSessions(target: Target): Promise<((subject: string) => Promise<number>) | undefined> {
  const revoke = (SessionStore.prototype as unknown as { revokeSubject?: (subject: string) => Promise<number> }).revokeSubject;
  if (typeof revoke !== 'function') return undefined;
  return async (subject) => {
    const store = await RedisKeyValueStore.connect({ target: target.redis, keyPrefix: `${target.prefix}kv:` });
    try {
      // The session lifetimes do not matter for revocation, so the defaults stand in.
      return await revoke.call(new SessionStore(store, { idle_timeout_s: 1800, absolute_lifetime_s: 43_200 }), subject);
    } finally {
      await store.close();
    }
  };
}

function writeList(out: NodeJS.WritableStream, entries: readonly StoredReviewEntry[]): void {
  if (entries.length === 0) {
    out.write('No pending review entries.\n');
    return;
  }
  const rows = [['ID', 'TIME', 'USER', 'ROUTE', 'ACTION', 'RISK', 'RULE'], ...entries.map(({ id, entry }) => row(id, entry))];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((cells) => cells[column]!.length)));
  for (const cells of rows) out.write(`${cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
}

function row(id: string, entry: ReviewEntry): string[] {
  let action: string = entry.action;
  if (entry.kind === 'break_glass') action = 'break_glass (claimed)';
  // The user's later decisions of that hour are in the audit trail only.
  else if (entry.user_hour_limit !== undefined) action = `${entry.action} (hour limit)`;
  return [id, new Date(entry.time).toISOString(), entry.user, entry.route, action, entry.risk.toFixed(3), entry.rule];
}


/** Returns a number of seconds in the largest whole unit: "30 days", "2 hours", "90 seconds". */
function describeDuration(seconds: number): string {
  for (const [unit, size] of [['day', 86_400], ['hour', 3_600], ['minute', 60]] as const) {
    if (seconds % size === 0) return `${seconds / size} ${unit}${seconds === size ? '' : 's'}`;
  }
  return `${seconds} seconds`;
}
