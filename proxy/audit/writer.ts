import { constants } from 'node:fs';
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
import { WriteFailures, type AuditHealth } from './write-failures.ts';

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

/** Milliseconds between attempts to write a batch after a failed write. */
export const WRITE_RETRY_MS = 1000;

/** The close stops writing after this many failed attempts, and the records still queued are lost. */
export const CLOSE_WRITE_ATTEMPTS = 5;

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
  /** Bytes of the records queued for the file so far, written or not. */
  bytes: number;
  /** Bytes of the batches written completely, which is the offset where the next batch starts. */
  written: number;
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
  readonly #failures: WriteFailures;
  #failedWhileClosing = 0;
  /** Function that ends the wait before the next write attempt early, set only during that wait. */
  #wakeRetry: (() => void) | null = null;
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
    this.#failures = new WriteFailures(options.logger);
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

  /**
   * Number of records appended but not written to a file: still queued, or dropped while the
   * disk failed. After `close()` these records are lost.
   */
  get unwrittenRecords(): number {
    return this.#queuedRecords + this.#dropped;
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

  /** Returns the state of the writes, for `/.wardgate/health`. */
  health(): AuditHealth {
    return {
      failed_writes: this.#failures.total,
      pending_records: this.#queuedRecords,
      dropped_records: this.#dropped,
      last_error: this.#failures.lastError?.message ?? null,
    };
  }

  /**
   * Waits until every record appended so far is written and fsync'd. While writes fail, it
   * keeps waiting, except during the close.
   */
  async flush(): Promise<void> {
    this.#syncDue = true;
    await this.#pump();
  }

  /**
   * Closes the trail: stops accepting entries, signs a final checkpoint over the chain head,
   * writes and fsyncs everything, and releases the lock. While writes fail, the close stops
   * after `CLOSE_WRITE_ATTEMPTS` failed attempts and logs the number of records not written.
   *
   * @throws AuditError `WG_AUDIT_WRITE_FAILED` when records were not written, because they were
   * still queued or dropped earlier while writes failed, or when the last fsync failed. The lock
   * is released in either case.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#timers) clearInterval(timer);
    // A write that waits for its retry starts at once.
    this.#wakeRetry?.();

    await this.#signing?.catch(() => {});
    try {
      await this.#checkpoint(true);
    } catch (error) {
      this.#options.logger?.error({ err: error }, 'final audit checkpoint could not be signed; the trail ends without a clean close');
    }
    this.#headDue = true;
    let syncError: unknown = null;
    try {
      await this.flush();
    } catch (error) {
      syncError = error;
    }
    const unwritten = this.#queuedRecords;
    if (this.#handle) await this.#handle.handle.close();
    this.#handle = null;
    await this.#signer.close();
    await rm(this.#lockFile, { force: true });

    if (unwritten + this.#dropped > 0 || syncError !== null) throw this.#closeFailure(unwritten, syncError);
  }

  /** Logs in one line what the close could not write, and returns the error the close rejects with. */
  #closeFailure(unwritten: number, syncError: unknown): AuditError {
    const lost = unwritten + this.#dropped;
    const cause = this.#failures.lastError ?? syncError;
    const reason = cause instanceof Error ? `: ${cause.message}` : '';
    const logMessage = lost > 0 ? `${lost} audit records were not written before the close; they are lost` : 'the last fsync of the audit trail failed at the close; records written since the previous fsync may be lost';
    this.#options.logger?.error({ err: cause, unwritten_records: unwritten, dropped_records: this.#dropped, failed_writes: this.#failures.total }, logMessage);

    const message = lost > 0
      ? `${lost} audit records were not written before the close (${unwritten} still queued, ${this.#dropped} dropped earlier while writes failed)${reason}. They are lost; free space on or repair the disk of audit.dir before starting again.`
      : `The last fsync of the audit trail failed at the close${reason}. Records written since the previous fsync may be lost; check the disk of audit.dir before starting again.`;
    return new AuditError('WG_AUDIT_WRITE_FAILED', message, { cause });
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
    this.#file = { index, name, path: path.join(this.#options.dir, name), day: utcDay(this.#now()), bytes: 0, written: 0 };
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
    if (this.#flushTimer || this.#pumping || this.#gaveUp()) return;
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
        if (this.#gaveUp()) return;
        if (!(await this.#write(batch))) await this.#waitBeforeRetry();
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

  /** Whether the close has stopped writing after `CLOSE_WRITE_ATTEMPTS` failed attempts. */
  #gaveUp(): boolean {
    return this.#failedWhileClosing >= CLOSE_WRITE_ATTEMPTS;
  }

  /** Waits `WRITE_RETRY_MS`, or less when the close starts. Only a wait during the close keeps the process alive. */
  #waitBeforeRetry(): Promise<void> {
    if (this.#gaveUp()) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        clearTimeout(timer);
        this.#wakeRetry = null;
        resolve();
      };
      timer = setTimeout(wake, WRITE_RETRY_MS);
      if (!this.#closing) timer.unref();
      this.#wakeRetry = wake;
    });
  }

  async #write(batch: Batch): Promise<boolean> {
    // The batch leaves the queue before the write starts, so that records appended during the
    // write go to a new batch instead of into one that is already being written.
    this.#queue.shift();
    const count = batch.lines.length;
    const data = Buffer.from(`${batch.lines.join('\n')}\n`);
    try {
      if (this.#handle?.file !== batch.file) {
        if (this.#handle) {
          await this.#handle.handle.datasync();
          await this.#handle.handle.close();
          this.#handle = null;
          this.#unsynced = 0;
        }
        this.#handle = { file: batch.file, handle: await open(batch.file.path, constants.O_WRONLY | constants.O_CREAT, 0o640) };
      }
      // The batch goes right after the last complete one, so that a retry overwrites whatever
      // part of a failed attempt reached the file.
      await writeAt(this.#handle.handle, data, batch.file.written);
    } catch (error) {
      this.#queue.unshift(batch);
      if (this.#closing) this.#failedWhileClosing++;
      const truncateError = await this.#cutFailedWrite(batch.file);
      this.#limitQueue();
      this.#failures.recordFailure(error, { file: batch.file.name, records: count, pendingRecords: this.#queuedRecords, droppedRecords: this.#dropped, truncateError });
      return false;
    }

    batch.file.written += data.length;
    this.#queuedRecords -= count;
    this.#failures.recordSuccess(this.#queuedRecords);
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

  /**
   * Cuts the file back to the end of its last complete batch after a failed write, such as
   * EFBIG or ENOSPC after part of the batch reached the file. So the file never ends in a
   * torn record, even when the writer stops before a retry succeeds. Returns the error of
   * the truncation, or null.
   */
  async #cutFailedWrite(file: OpenFile): Promise<unknown> {
    if (this.#handle?.file !== file) return null;
    try {
      await this.#handle.handle.truncate(file.written);
      return null;
    } catch (error) {
      return error;
    }
  }

  /** Keeps memory bounded while the disk fails: the newest records beyond the limit are dropped and counted. */
  #limitQueue(): void {
    let dropped = 0;
    while (this.#queuedRecords > MAX_QUEUED_RECORDS && this.#queue.length > 1) {
      const batch = this.#queue.pop()!;
      this.#queuedRecords -= batch.lines.length;
      dropped += batch.lines.length;
    }
    this.#dropped += dropped;
    if (dropped > 0) this.#options.logger?.error({ dropped, dropped_records: this.#dropped }, 'audit queue is full while the disk fails; the newest records are dropped');
  }
}

/** Writes all of `data` at `position` of the file, continuing after a short write. */
async function writeAt(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let offset = 0; offset < data.length; ) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, position + offset);
    if (bytesWritten === 0) throw new Error(`write() wrote 0 of ${data.length - offset} bytes at offset ${position + offset}`);
    offset += bytesWritten;
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
