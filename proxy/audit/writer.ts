import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AuditEntry, AuditPort } from '../ports.ts';
import { canonicalJson, GENESIS_HASH, sha256Hex } from './canonical.ts';
import { CheckpointSigner } from './checkpoint-signer.ts';
import { AuditError } from './errors.ts';
import { auditFileName, INSTANCE_ID_PATTERN, utcDay } from './files.ts';
import { writeHeadState } from './head.ts';
import { loadOrCreateSigningKeys, type AuditPublicKeys } from './keys.ts';
import { takeLock } from './lock.ts';
import { PatientFieldPseudonymizer } from './patient-fields.ts';
import type { PatientPaths } from '../../scorer/features/patient-paths.ts';
import { findChainHead, type ChainHead } from './recover.ts';
import type { CheckpointSignatures } from './signatures.ts';

/** Format tag in every file header. */
export const AUDIT_FORMAT = 'wardgate-audit/1';

/** Fields the writer sets on every record; an entry's own values for them are replaced. */
export const RESERVED_FIELDS = Object.freeze(['seq', 'prev', 'time', 'instance']);

/** A batch is written this long after its first record was appended, or later when the write before it is still running. */
export const WRITE_DELAY_MS = 50;

/** A file is fsync'd after this many records even before `fsyncIntervalMs` has passed. */
export const FSYNC_RECORDS = 500;

/** Records kept in memory while the disk fails; beyond this, records are counted and dropped. */
export const MAX_QUEUED_RECORDS = 100_000;

export interface AuditTrailOptions {
  readonly dir: string;
  /** Names this instance's chain and its files; `[A-Za-z0-9._]`, 1 to 64 characters. */
  readonly instanceId: string;
  /** Folder of the checkpoint signing keys; generated there on first start. */
  readonly keyDir: string;
  /** A checkpoint is signed after this many records. */
  readonly checkpointEvery: number;
  /** A checkpoint is also signed this many milliseconds after the last one when records were added. */
  readonly checkpointIntervalMs: number;
  /** A file is closed and a new one started before it would pass this size in bytes. */
  readonly maxFileBytes: number;
  /** Written data is fsync'd at least this often, in milliseconds. */
  readonly fsyncIntervalMs: number;
  /** HMAC key for patient pseudonyms; the same key the scorer uses. */
  readonly patientKey: Uint8Array;
  /** The compiled `scorer.patient_paths`, so that ids in configured page paths are pseudonymized too. */
  readonly patientPaths?: PatientPaths;
  /** Clock for record times and daily rotation, in milliseconds since the epoch. */
  readonly now?: () => number;
  readonly logger?: Logger;
  /**
   * Called after each batch reaches the operating system, with the time in milliseconds
   * from the oldest record's `append` to the end of the write, and the batch size.
   */
  readonly onWrite?: (latencyMs: number, records: number) => void;
}

interface OpenFile {
  readonly index: number;
  readonly name: string;
  readonly path: string;
  readonly day: string;
  bytes: number;
}

interface Serialised {
  readonly record: Record<string, unknown> & { seq: number };
  readonly line: string;
  readonly bytes: number;
}

interface Batch {
  readonly file: OpenFile;
  readonly lines: string[];
  readonly queuedAt: number;
  /** Sequence number and hash of the batch's last record. */
  lastSeq: number;
  lastHash: string;
  /** The batch contains a file header or checkpoint, after which the head state is written. */
  updatesHead: boolean;
}

/**
 * Opens an instance's trail in `options.dir`. Takes the folder's lock for the instance,
 * loads or creates the signing keys and finds where the last run stopped. Then starts a
 * new file that continues the chain, with a `gap` event when the last run ended without a
 * clean close.
 *
 * @throws AuditError `WG_AUDIT_INVALID_OPTION`, `WG_AUDIT_DIR_UNUSABLE`, `WG_AUDIT_DIR_LOCKED` or `WG_AUDIT_KEY_INVALID`.
 */
export async function openAuditTrail(options: AuditTrailOptions): Promise<AuditTrail> {
  assertOptions(options);

  try {
    await mkdir(options.dir, { recursive: true, mode: 0o750 });
  } catch (error) {
    throw new AuditError('WG_AUDIT_DIR_UNUSABLE', `Cannot create the audit folder ${options.dir} (${(error as NodeJS.ErrnoException).code}); set audit.dir to a writable folder.`, { cause: error });
  }
  const lockFile = await takeLock(options.dir, options.instanceId);

  try {
    const keys = await loadOrCreateSigningKeys(options.keyDir);
    const head = await findChainHead(options.dir, options.instanceId);
    const signer = new CheckpointSigner(keys);
    return new AuditTrail(options, keys.publicKeys, signer, head, lockFile);
  } catch (error) {
    await rm(lockFile, { force: true });
    throw error;
  }
}

/**
 * The append-only, hash-chained audit trail of one instance, implementing the pipeline's
 * `AuditPort`. `append` assigns the sequence number and chain hash at once and returns.
 * A write queue then hands batches to the disk without blocking the event loop.
 */
export class AuditTrail implements AuditPort {
  readonly instanceId: string;
  readonly publicKeys: AuditPublicKeys;
  readonly #options: AuditTrailOptions;
  readonly #now: () => number;
  readonly #signer: CheckpointSigner;
  readonly #pseudonymizer: PatientFieldPseudonymizer;
  readonly #lockFile: string;
  readonly #timers: NodeJS.Timeout[] = [];

  #seq: number;
  #prevHash: string;
  #file: OpenFile | null = null;
  #queue: Batch[] = [];
  #queuedRecords = 0;
  #dropped = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  #pumping: Promise<void> | null = null;
  #handle: { file: OpenFile; handle: FileHandle } | null = null;
  #unsynced = 0;
  #syncDue = false;
  #sinceCheckpoint = 0;
  #lastCheckpointSeq = -1;
  #signing: Promise<void> | null = null;
  #closing = false;
  #closed: Promise<void> | null = null;
  #rejectedAfterClose = 0;
  #writeErrors = 0;
  /** Last record written to a file, and whether the head state must be written after the next fsync. */
  #written: { seq: number; hash: string; file: number } | null = null;
  #headDue = false;
  #headErrors = 0;

  constructor(options: AuditTrailOptions, publicKeys: AuditPublicKeys, signer: CheckpointSigner, head: ChainHead | null, lockFile: string) {
    this.instanceId = options.instanceId;
    this.publicKeys = publicKeys;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#signer = signer;
    this.#pseudonymizer = new PatientFieldPseudonymizer(options.patientKey, options.patientPaths);
    this.#lockFile = lockFile;
    // When records that the head state records are missing, the chain continues from the
    // recorded head, so that no file index or sequence number of the missing records is reused.
    const missing = head?.missing ?? null;
    this.#seq = missing ? missing.recorded.seq : (head?.last?.seq ?? 0);
    this.#prevHash = missing ? missing.recorded.head_hash : (head?.last?.hash ?? GENESIS_HASH);
    const lastFileIndex = Math.max(head?.lastFileIndex ?? 0, missing?.recorded.file ?? 0);
    const previousFile = missing ? auditFileName(this.instanceId, missing.recorded.file) : (head?.last?.file ?? null);

    this.#startFile(lastFileIndex + 1, previousFile);
    if (head?.headError) {
      options.logger?.error({ instance: this.instanceId }, `audit ${head.headError}; deletions of the newest records before this start cannot be detected`);
      this.#push({ kind: 'gap', reason: 'head_state_invalid', message: `${head.headError}; records deleted from the end of the trail before this start cannot be detected`, last_seen: head.last, torn: head.torn });
    }
    if (missing) {
      options.logger?.error({ instance: this.instanceId, recorded_seq: missing.recorded.seq, last_seq: head?.last?.seq ?? null, missing_files: missing.files }, `audit records are missing: ${missing.message}`);
      this.#push({
        kind: 'gap',
        reason: 'records_missing',
        message: missing.message,
        last_seen: head?.last ?? null,
        recorded_head: { seq: missing.recorded.seq, hash: missing.recorded.head_hash, file: auditFileName(this.instanceId, missing.recorded.file) },
        missing_files: missing.files,
        torn: head?.torn ?? null,
      });
    } else if (head && !head.cleanClose && !head.headError) {
      this.#push({
        kind: 'gap',
        reason: 'unclean_shutdown',
        message: 'the previous run ended without a clean close; records it had not yet written are lost',
        last_seen: head.last,
        torn: head.torn,
      });
    }

    this.#timers.push(setInterval(() => this.#requestSync(), options.fsyncIntervalMs).unref());
    this.#timers.push(setInterval(() => this.#checkpoint(false).catch(() => {}), options.checkpointIntervalMs).unref());
  }

  /** Sequence number of the last record appended (not necessarily written yet). */
  get seq(): number {
    return this.#seq;
  }

  /** Name of the file that receives new records. */
  get currentFile(): string {
    return this.#file!.name;
  }

  /**
   * Appends one entry of any kind, with any extra fields. Patient identifiers in `path` and
   * `patient_id` are replaced by pseudonyms. Never throws and never waits for the disk.
   */
  append(entry: AuditEntry): void {
    if (this.#closing) {
      if (this.#rejectedAfterClose++ === 0) this.#options.logger?.error({ kind: entry?.kind }, 'audit entry appended after the trail was closed; it is not recorded');
      return;
    }
    try {
      const kind = typeof entry?.kind === 'string' && entry.kind !== '' ? entry.kind : 'unknown';
      this.#append({ ...this.#pseudonymizer.apply(entry), kind });
    } catch (error) {
      this.#options.logger?.error({ err: error, kind: entry?.kind }, 'audit entry could not be serialised; it is not recorded');
    }
  }

  /** Waits until every record appended so far is written and fsync'd. */
  async flush(): Promise<void> {
    this.#syncDue = true;
    await this.#pump();
  }

  /**
   * Closes the trail cleanly: stops accepting entries, signs a final checkpoint over the
   * chain head, writes and fsyncs everything, and releases the lock.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#timers) clearInterval(timer);

    await this.#signing?.catch(() => {});
    try {
      await this.#checkpoint(true);
    } catch (error) {
      this.#options.logger?.error({ err: error }, 'final audit checkpoint could not be signed; the trail ends without a clean close');
    }
    this.#headDue = true;
    await this.flush();
    if (this.#handle) await this.#handle.handle.close();
    this.#handle = null;
    await this.#signer.close();
    await rm(this.#lockFile, { force: true });
  }

  #append(fields: Record<string, unknown>): void {
    const time = this.#now();
    const day = utcDay(time);
    const serialised = this.#serialise(fields, time);
    const file = this.#file!;
    if (file.bytes > 0 && (file.bytes + serialised.bytes > this.#options.maxFileBytes || day !== file.day)) {
      // The file header takes the next sequence number, so the record is serialised again after it.
      this.#startFile(file.index + 1, file.name);
      this.#push(fields, time);
      return;
    }
    this.#push(fields, time, serialised);
  }

  #startFile(index: number, previousFile: string | null): void {
    const name = auditFileName(this.instanceId, index);
    this.#file = { index, name, path: path.join(this.#options.dir, name), day: utcDay(this.#now()), bytes: 0 };
    this.#push({ kind: 'file_header', format: AUDIT_FORMAT, file: index, previous_file: previousFile, public_keys: this.publicKeys });
  }

  /** Returns the record that follows the chain head now, its line and the line's size in bytes with its newline. */
  #serialise(fields: Record<string, unknown>, time: number): Serialised {
    const record = { ...fields, seq: this.#seq + 1, prev: this.#prevHash, time: new Date(time).toISOString(), instance: this.instanceId };
    const line = canonicalJson(record);
    return { record, line, bytes: Buffer.byteLength(line) + 1 };
  }

  /** Chains and queues a record. `serialised` must come from `#serialise` with no record pushed since. */
  #push(fields: Record<string, unknown>, time = this.#now(), serialised = this.#serialise(fields, time)): void {
    const { record, line } = serialised;
    this.#seq = record.seq;
    this.#prevHash = sha256Hex(line);

    const file = this.#file!;
    file.bytes += serialised.bytes;
    let batch = this.#queue[this.#queue.length - 1];
    if (batch && batch.file === file) batch.lines.push(line);
    else this.#queue.push((batch = { file, lines: [line], queuedAt: performance.now(), lastSeq: 0, lastHash: '', updatesHead: false }));
    batch.lastSeq = record.seq;
    batch.lastHash = this.#prevHash;
    if (record.kind === 'checkpoint' || record.kind === 'file_header') batch.updatesHead = true;
    this.#queuedRecords++;
    this.#scheduleWrite();

    if (record.kind !== 'checkpoint' && record.kind !== 'file_header') this.#sinceCheckpoint++;
    if (this.#sinceCheckpoint >= this.#options.checkpointEvery) this.#checkpoint(false).catch(() => {});
  }

  /** Signs the current chain head in the worker and appends the checkpoint when the signatures return. */
  async #checkpoint(final: boolean): Promise<void> {
    if (!final && this.#closing) return;
    if (this.#signing) {
      await this.#signing.catch(() => {});
      if (!final) return;
    }
    if (!final && (this.#sinceCheckpoint === 0 || this.#seq === this.#lastCheckpointSeq)) return;

    const head = { instance: this.instanceId, head_seq: this.#seq, head_hash: this.#prevHash };
    this.#sinceCheckpoint = 0;
    const signing = this.#signer.sign(head).then((signatures: CheckpointSignatures) => {
      this.#push({ kind: 'checkpoint', head_seq: head.head_seq, head_hash: head.head_hash, key_id: this.publicKeys.key_id, signatures, final: final || undefined });
      this.#lastCheckpointSeq = this.#seq;
      // Records that arrived while signing may already call for the next checkpoint.
      if (!final && this.#sinceCheckpoint >= this.#options.checkpointEvery) setImmediate(() => this.#checkpoint(false).catch(() => {}));
    });
    this.#signing = signing;
    try {
      await signing;
    } catch (error) {
      this.#options.logger?.error({ err: error, head_seq: head.head_seq }, 'audit checkpoint signing failed; the next checkpoint covers these records');
      throw error;
    } finally {
      if (this.#signing === signing) this.#signing = null;
    }
  }

  #scheduleWrite(): void {
    if (this.#flushTimer || this.#pumping) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = null;
      this.#pump().catch(() => {});
    }, WRITE_DELAY_MS);
  }

  #requestSync(): void {
    if (this.#unsynced === 0) return;
    this.#syncDue = true;
    this.#pump().catch(() => {});
  }

  /** Runs the write queue until it is empty; only one pump runs at a time. */
  #pump(): Promise<void> {
    if (this.#pumping) return this.#pumping.then(() => (this.#queue.length > 0 || this.#syncDue ? this.#pump() : undefined));
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    this.#pumping = this.#drain().finally(() => {
      this.#pumping = null;
      if (this.#queue.length > 0) this.#scheduleWrite();
    });
    return this.#pumping;
  }

  async #drain(): Promise<void> {
    for (;;) {
      const batch = this.#queue[0];
      if (batch) {
        if (!(await this.#write(batch))) return;
        continue;
      }
      if (this.#syncDue && this.#handle && this.#unsynced > 0) {
        await this.#handle.handle.datasync();
        this.#unsynced = 0;
      }
      this.#syncDue = false;
      if (this.#unsynced === 0) await this.#writeHead();
      return;
    }
  }

  async #write(batch: Batch): Promise<boolean> {
    // The batch leaves the queue before the write starts, so that records appended during the
    // write go to a new batch instead of into one that is already being written.
    this.#queue.shift();
    const count = batch.lines.length;
    try {
      if (this.#handle?.file !== batch.file) {
        if (this.#handle) {
          await this.#handle.handle.datasync();
          await this.#handle.handle.close();
          this.#handle = null;
          this.#unsynced = 0;
        }
        this.#handle = { file: batch.file, handle: await open(batch.file.path, 'a', 0o640) };
      }
      await this.#handle.handle.appendFile(`${batch.lines.join('\n')}\n`);
    } catch (error) {
      this.#queue.unshift(batch);
      if (this.#writeErrors++ % 100 === 0) this.#options.logger?.error({ err: error, file: batch.file.name, records: count }, 'audit write failed; retrying in one second');
      this.#limitQueue();
      await new Promise((resolve) => setTimeout(resolve, 1000).unref());
      return !this.#closing || this.#writeErrors < 5;
    }

    this.#queuedRecords -= count;
    this.#unsynced += count;
    this.#written = { seq: batch.lastSeq, hash: batch.lastHash, file: batch.file.index };
    if (batch.updatesHead) this.#headDue = true;
    this.#options.onWrite?.(performance.now() - batch.queuedAt, count);
    // A busy queue must not postpone the timed fsync until it drains. A file header or
    // checkpoint is fsync'd at once, so that the head state can record it.
    if (this.#unsynced >= FSYNC_RECORDS || this.#syncDue || this.#headDue) {
      await this.#handle.handle.datasync();
      this.#unsynced = 0;
      this.#syncDue = false;
      await this.#writeHead();
    }
    return true;
  }

  /**
   * Stores the last written record in the head state file when a header or checkpoint was
   * written since the last update, or the trail is closing. Called only when everything
   * written is fsync'd, so that the state never runs ahead of the files.
   */
  async #writeHead(): Promise<void> {
    if (!this.#headDue || !this.#written) return;
    this.#headDue = false;
    const written = this.#written;
    try {
      await writeHeadState(this.#options.dir, { instance: this.instanceId, seq: written.seq, head_hash: written.hash, file: written.file });
    } catch (error) {
      if (this.#headErrors++ % 100 === 0) this.#options.logger?.error({ err: error, seq: written.seq }, 'audit head state file could not be written; a later checkpoint retries');
    }
  }

  /** Keeps memory bounded while the disk fails: the newest records beyond the limit are dropped and counted. */
  #limitQueue(): void {
    while (this.#queuedRecords > MAX_QUEUED_RECORDS && this.#queue.length > 1) {
      const dropped = this.#queue.pop()!;
      this.#queuedRecords -= dropped.lines.length;
      this.#dropped += dropped.lines.length;
    }
    if (this.#dropped > 0) this.#options.logger?.error({ dropped: this.#dropped }, 'audit queue is full while the disk fails; records are dropped');
  }
}

function assertOptions(options: AuditTrailOptions): void {
  const fail = (option: string, message: string): never => {
    throw new AuditError('WG_AUDIT_INVALID_OPTION', `Invalid audit option ${option}: ${message}.`);
  };
  if (!INSTANCE_ID_PATTERN.test(options.instanceId)) fail('instance_id', `expected 1 to 64 characters of A-Z, a-z, 0-9, "." or "_", received ${JSON.stringify(options.instanceId)}`);
  if (!Number.isInteger(options.checkpointEvery) || options.checkpointEvery < 1) fail('checkpoint_every', `expected a positive integer, received ${options.checkpointEvery}`);
  if (!(options.checkpointIntervalMs >= 100)) fail('checkpoint_interval', `expected at least 100 ms, received ${options.checkpointIntervalMs}`);
  if (!Number.isInteger(options.maxFileBytes) || options.maxFileBytes < 1024) fail('max_file_bytes', `expected an integer of at least 1024, received ${options.maxFileBytes}`);
  if (!(options.fsyncIntervalMs >= 1)) fail('fsync_interval', `expected at least 1 ms, received ${options.fsyncIntervalMs}`);
}
