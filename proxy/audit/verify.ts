import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { GENESIS_HASH, recordHash } from './canonical.ts';
import { findDuplicateKey } from './duplicate-keys.ts';
import { auditFileName, listAuditFiles, type AuditFile } from './files.ts';
import { headFileName, headStateInstances, readHeadState, type HeadState } from './head.ts';
import type { AuditPublicKeys } from './keys.ts';
import { splitLines, type TornTail } from './recover.ts';
import { verifyCheckpointSignatures } from './signatures.ts';

/** Kinds of findings; each names the first record or file where the trail differs from what was written. */
export type FindingCode =
  | 'WG_AUDIT_NO_FILES'
  | 'WG_AUDIT_RECORD_INVALID'
  | 'WG_AUDIT_RECORD_EDITED'
  | 'WG_AUDIT_RECORD_DROPPED'
  | 'WG_AUDIT_RECORD_INSERTED'
  | 'WG_AUDIT_RECORD_REORDERED'
  | 'WG_AUDIT_CHAIN_BROKEN'
  | 'WG_AUDIT_FILE_MISSING'
  | 'WG_AUDIT_FILE_TRUNCATED'
  | 'WG_AUDIT_FILE_UNREADABLE'
  | 'WG_AUDIT_HEAD_INVALID'
  | 'WG_AUDIT_HEAD_MISSING'
  | 'WG_AUDIT_TORN_RECORD'
  | 'WG_AUDIT_HEADER_INVALID'
  | 'WG_AUDIT_KEY_UNTRUSTED'
  | 'WG_AUDIT_CHECKPOINT_MISMATCH'
  | 'WG_AUDIT_SIGNATURE_INVALID'
  | 'WG_AUDIT_UNSIGNED_TAIL';

/** One problem (or, in `notes`, one accepted irregularity) at a file and line. */
export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly code: FindingCode;
  readonly message: string;
}

export interface VerifyOptions {
  /** Public key pairs whose checkpoint signatures are accepted. */
  readonly trustedKeys: readonly AuditPublicKeys[];
  /** Accept a trail that ends without a final checkpoint (a running instance); reported as a note. */
  readonly allowOpenTail?: boolean;
}

export interface VerifyReport {
  readonly findings: Finding[];
  /** Irregularities that the trail itself explains, such as a torn line acknowledged by a later gap event. */
  readonly notes: Finding[];
  instances: number;
  files: number;
  records: number;
  checkpoints: number;
}

interface Item {
  readonly file: AuditFile;
  readonly line: number;
  readonly record: { seq: number; prev: string; kind: string; [field: string]: unknown };
  readonly hash: string;
  /** First record of its file. */
  readonly first: boolean;
  /** Last record of its file. */
  readonly last: boolean;
  /** The link to the record before cannot be checked (a file or record before it is missing or invalid). */
  readonly unlinked: boolean;
}

/** Formats a finding as `file:line: CODE: message`. */
export function formatFinding(finding: Finding): string {
  return `${finding.file}:${finding.line}: ${finding.code}: ${finding.message}`;
}

/**
 * Verifies every instance's trail in `dir`: sequence numbers, hash links within and across
 * files, duplicate keys, file headers, the file sequence, both signatures of every
 * checkpoint, and whether the trail reaches the position in the instance's head state
 * file. Each finding names the first record or file that was edited, dropped, inserted,
 * reordered, truncated or removed.
 */
export async function verifyAuditDir(dir: string, options: VerifyOptions): Promise<VerifyReport> {
  const report: VerifyReport = { findings: [], notes: [], instances: 0, files: 0, records: 0, checkpoints: 0 };
  // Head states are read before the files, so that a running writer cannot record a head
  // beyond the records read.
  const heads = new Map<string, { state: HeadState | null; error?: string }>();
  for (const instance of headStateInstances(await readdir(dir))) heads.set(instance, await readHeadState(dir, instance));
  const byInstance = await listAuditFiles(dir);
  for (const instance of heads.keys()) if (!byInstance.has(instance)) byInstance.set(instance, []);

  if (byInstance.size === 0) {
    report.findings.push({ file: dir, line: 0, code: 'WG_AUDIT_NO_FILES', message: 'no audit files (audit-<instance>-<n>.jsonl) in this folder; pass the folder set as audit.dir' });
  }
  for (const [instance, files] of byInstance) {
    const counts = await verifyInstance(dir, instance, files, heads.get(instance) ?? { state: null }, options, report);
    report.instances++;
    report.files += files.length;
    report.records += counts.records;
    report.checkpoints += counts.checkpoints;
  }
  return report;
}

// NOTE: an instance's records are all held in memory while it is verified, which for
// trails of many large files needs memory in proportion to their size.
async function verifyInstance(
  dir: string,
  instance: string,
  files: AuditFile[],
  head: { state: HeadState | null; error?: string },
  options: VerifyOptions,
  report: VerifyReport,
): Promise<{ records: number; checkpoints: number }> {
  const finding = (file: string, line: number, code: FindingCode, message: string) => report.findings.push({ file, line, code, message });
  const trusted = new Map(options.trustedKeys.map((keys) => [keys.key_id, keys]));
  const { items, torn } = await readItems(instance, files, finding);

  const positions = new Map<number, number[]>();
  items.forEach((item, index) => positions.set(item.record.seq, [...(positions.get(item.record.seq) ?? []), index]));
  const hashBySeq = new Map<number, string>();
  const edited = new Set<number>();
  const moved = new Set<number>();
  const acknowledgedTorn: TornTail[] = [];
  let checkpoints = 0;
  let previous: Item | null = null;

  const accept = (item: Item) => {
    hashBySeq.set(item.record.seq, item.hash);
    previous = item;
    if (item.record.kind === 'gap' && isTorn(item.record.torn)) acknowledgedTorn.push(item.record.torn);
    if (item.record.kind === 'file_header') checkHeader(item, trusted, finding);
    if (item.record.kind === 'checkpoint') {
      checkpoints++;
      checkCheckpoint(item, instance, hashBySeq, edited, trusted, finding);
    }
  };

  for (let i = 0; i < items.length; i++) {
    const b = items[i]!;
    const a: Item | null = previous;
    if (b.first && b.record.kind !== 'file_header') finding(b.file.path, b.line, 'WG_AUDIT_HEADER_INVALID', `the first record of a file must be a file_header, found ${JSON.stringify(b.record.kind)}: the header was removed or the records were reordered`);

    if (a === null) {
      if (!b.unlinked && (b.record.seq !== 1 || b.record.prev !== GENESIS_HASH)) finding(b.file.path, b.line, 'WG_AUDIT_CHAIN_BROKEN', `the first record of the trail must have seq 1 and the genesis prev, found seq ${b.record.seq}`);
      accept(b);
      continue;
    }
    const aSeq = (a as Item).record.seq;
    // After an invalid line or a missing file the link cannot be checked, but the sequence
    // number must still rise: a repeated or older seq is classified like any other.
    if (links(a, b) || (b.unlinked && b.record.seq > aSeq)) {
      accept(b);
      continue;
    }

    const c = items[i + 1];
    if (c && links(a, c) && links(c, b)) {
      finding(b.file.path, b.line, 'WG_AUDIT_RECORD_REORDERED', `record seq ${b.record.seq} comes before seq ${c.record.seq} (${c.file.name}:${c.line}): the records were reordered`);
      accept(c);
      accept(b);
      i++;
    } else if (c && links(a, c)) {
      finding(b.file.path, b.line, 'WG_AUDIT_RECORD_INSERTED', `record (seq ${b.record.seq}, kind ${b.record.kind}) does not belong to the chain between seq ${aSeq} and seq ${c.record.seq}: it was inserted`);
    } else if (b.record.seq === aSeq + 1) {
      const holder = a as Item;
      edited.add(aSeq);
      finding(holder.file.path, holder.line, 'WG_AUDIT_RECORD_EDITED', `record seq ${aSeq} was edited: its hash does not match the prev stored in seq ${b.record.seq} (${b.file.name}:${b.line})`);
      accept(b);
    } else if (b.record.seq > aSeq + 1) {
      const later = laterPositions(positions, aSeq + 1, b.record.seq - 1, i);
      if (later.length > 0) {
        const seqs = later.map((index) => items[index]!.record.seq);
        for (const seq of seqs) moved.add(seq);
        finding(b.file.path, b.line, 'WG_AUDIT_RECORD_REORDERED', `record seq ${b.record.seq} follows seq ${aSeq}, but seq ${seqs.join(', ')} appear later (${items[later[0]!]!.file.name}:${items[later[0]!]!.line}): the records were reordered`);
      } else if ((a as Item).last && b.first && (a as Item).file !== b.file) {
        const holder = a as Item;
        finding(holder.file.path, holder.line + 1, 'WG_AUDIT_FILE_TRUNCATED', `the file ends after seq ${aSeq} but ${b.file.name} continues from seq ${b.record.seq - 1}: records seq ${aSeq + 1} to ${b.record.seq - 1} were cut from its end`);
      } else {
        finding(b.file.path, b.line, 'WG_AUDIT_RECORD_DROPPED', (b.record.seq - 1 === aSeq + 1 ? `record seq ${aSeq + 1} is missing before this record: it was dropped` : `records seq ${aSeq + 1} to ${b.record.seq - 1} are missing before this record: they were dropped`));
      }
      accept(b);
    } else if (moved.has(b.record.seq)) {
      // Already reported where the gap it left was found.
    } else if ((positions.get(b.record.seq) ?? []).length > 1) {
      finding(b.file.path, b.line, 'WG_AUDIT_RECORD_INSERTED', `a second record with seq ${b.record.seq} (kind ${b.record.kind}) does not link to the chain: it was inserted`);
    } else if (b.record.seq <= aSeq) {
      finding(b.file.path, b.line, 'WG_AUDIT_RECORD_REORDERED', `record seq ${b.record.seq} appears after seq ${aSeq}: the records were reordered`);
    } else {
      finding(b.file.path, b.line, 'WG_AUDIT_CHAIN_BROKEN', `record seq ${b.record.seq} does not link to seq ${aSeq}`);
      accept(b);
    }
  }

  for (const tail of torn) {
    const acknowledged = acknowledgedTorn.some((gap) => gap.file === tail.file.name && gap.offset === tail.offset && gap.bytes === tail.bytes);
    const entry = { file: tail.file.path, line: tail.line, code: 'WG_AUDIT_TORN_RECORD' as const };
    if (acknowledged) report.notes.push({ ...entry, message: `a partial record of ${tail.bytes} bytes, acknowledged by the next run's gap event` });
    else finding(entry.file, entry.line, entry.code, `the file ends with a partial record of ${tail.bytes} bytes that no gap event acknowledges: the file was truncated or cut in the middle of a record`);
  }

  const end: Item | null = previous;
  if (end !== null) checkEnd(end, options, report);
  checkHeadState(dir, instance, files, items, head, report);
  return { records: items.length, checkpoints };
}

/**
 * Compares the trail with the head state file, which the writer updates after every file
 * header, checkpoint and close. A trail whose records end before the recorded head lost its
 * newest file or the end of it.
 */
function checkHeadState(dir: string, instance: string, files: AuditFile[], items: Item[], head: { state: HeadState | null; error?: string }, report: VerifyReport): void {
  const headFile = path.join(dir, headFileName(instance));
  if (head.error) {
    report.findings.push({ file: headFile, line: 0, code: 'WG_AUDIT_HEAD_INVALID', message: `${head.error}: it was edited or corrupted, so deleted newest records cannot be detected; compare with the checkpoints shipped off the host` });
    return;
  }
  const state = head.state;
  if (!state) {
    if (items.length > 0) report.notes.push({ file: headFile, line: 0, code: 'WG_AUDIT_HEAD_MISSING', message: 'no head state file, so a deletion of the newest records cannot be detected; it is missing for trails written before head state files existed, otherwise it was deleted' });
    return;
  }

  const recordedFile = auditFileName(instance, state.file);
  const atHead = items.find((item) => item.record.seq === state.seq);
  if (atHead) {
    // A record already named by another finding, such as a forged checkpoint, is not named twice.
    const named = report.findings.some((finding) => finding.file === atHead.file.path && finding.line === atHead.line);
    // A hash that belongs to another record means that the head state's seq was changed, not a record.
    const hashOwner = items.find((item) => item.hash === state.head_hash);
    if (atHead.hash !== state.head_hash && hashOwner !== undefined) {
      report.findings.push({ file: headFile, line: 0, code: 'WG_AUDIT_HEAD_INVALID', message: `the head state file records seq ${state.seq} with the hash of seq ${hashOwner.record.seq}: the head state file was edited` });
    } else if (atHead.hash !== state.head_hash && !named) {
      report.findings.push({ file: atHead.file.path, line: atHead.line, code: 'WG_AUDIT_RECORD_EDITED', message: `record seq ${state.seq} was edited: the head state file records hash ${state.head_hash.slice(0, 16)}... for it, but it hashes to ${atHead.hash.slice(0, 16)}...` });
    }
    return;
  }
  const lastSeq = items.reduce((max, item) => Math.max(max, item.record.seq), 0);
  // A recorded head inside the trail's range is a dropped record, which the chain checks report.
  if (state.seq < lastSeq) return;

  const lastFile = files[files.length - 1];
  const endsAt = lastSeq === 0 ? 'the trail has no records' : `the trail ends at seq ${lastSeq}`;
  if (!lastFile || state.file > lastFile.index) {
    const firstMissing = (lastFile?.index ?? 0) + 1;
    const missing = firstMissing === state.file ? `${recordedFile} is` : `${auditFileName(instance, firstMissing)} to ${recordedFile} are`;
    report.findings.push({ file: path.join(dir, auditFileName(instance, firstMissing)), line: 0, code: 'WG_AUDIT_FILE_MISSING', message: `the head state file records seq ${state.seq} in ${recordedFile}, but ${endsAt} and ${missing} missing: the newest files were removed` });
    return;
  }
  const holder = [...items].reverse().find((item) => item.file.index === state.file);
  const target = files.find((file) => file.index === state.file) ?? lastFile;
  const cut = lastSeq + 1 === state.seq ? `record seq ${state.seq} was` : `records seq ${lastSeq + 1} to ${state.seq} were`;
  report.findings.push({ file: target.path, line: (holder?.line ?? 0) + 1, code: 'WG_AUDIT_FILE_TRUNCATED', message: `the head state file records seq ${state.seq} in ${recordedFile}, but ${endsAt}: ${cut} cut from the end of the file` });
}

/** Reads every file into chain items, reporting missing files and unparsable lines. */
async function readItems(instance: string, files: AuditFile[], finding: (file: string, line: number, code: FindingCode, message: string) => void) {
  const items: Item[] = [];
  const torn: Array<{ file: AuditFile; line: number; offset: number; bytes: number }> = [];
  let expectedIndex = 1;
  let unlinked = false;

  for (const file of files) {
    if (file.index !== expectedIndex) {
      const missing = file.index - expectedIndex === 1 ? auditFileName(instance, expectedIndex) : `${auditFileName(instance, expectedIndex)} to ${auditFileName(instance, file.index - 1)}`;
      finding(file.path, 1, 'WG_AUDIT_FILE_MISSING', `${missing} ${file.index - expectedIndex === 1 ? 'is' : 'are'} missing before this file: the file was removed`);
      unlinked = true;
    }
    expectedIndex = file.index + 1;

    let content: Buffer;
    try {
      content = await readFile(file.path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      const reason = code === 'EISDIR' ? 'is a folder, not a trail file' : `cannot be read (${code})`;
      finding(file.path, 0, 'WG_AUDIT_FILE_UNREADABLE', `the path ${reason}: the file was replaced or its permissions changed; restore the file from a copy`);
      unlinked = true;
      continue;
    }
    const { complete, tornAt } = splitLines(content);
    if (tornAt !== null) torn.push({ file, line: complete.length + 1, offset: tornAt, bytes: content.length - tornAt });

    const start = items.length;
    complete.forEach((text, index) => {
      const record = parseRecord(text);
      if (!record) {
        finding(file.path, index + 1, 'WG_AUDIT_RECORD_INVALID', 'the line is not a valid audit record (JSON with seq, prev and kind): it was edited or corrupted');
        unlinked = true;
        return;
      }
      const duplicate = findDuplicateKey(text);
      if (duplicate !== null) {
        finding(file.path, index + 1, 'WG_AUDIT_RECORD_INVALID', `the record has the key ${JSON.stringify(duplicate)} twice: a reader that keeps the first value sees other content than the hash covers, so the line was edited`);
      }
      items.push({ file, line: index + 1, record, hash: recordHash(record), first: items.length === start, last: false, unlinked });
      unlinked = false;
    });
    if (items.length > start) items[items.length - 1] = { ...items[items.length - 1]!, last: true };
  }
  return { items, torn };
}

function links(a: Item, b: Item): boolean {
  return b.record.seq === a.record.seq + 1 && b.record.prev === a.hash;
}

function laterPositions(positions: Map<number, number[]>, from: number, to: number, after: number): number[] {
  const found: number[] = [];
  for (let seq = from; seq <= to && found.length < 10; seq++) {
    for (const index of positions.get(seq) ?? []) if (index > after) found.push(index);
  }
  return found;
}

function checkHeader(item: Item, trusted: Map<string, AuditPublicKeys>, finding: (file: string, line: number, code: FindingCode, message: string) => void): void {
  const { file, public_keys: keys } = item.record as { file?: unknown; public_keys?: Partial<AuditPublicKeys> };
  if (file !== item.file.index) finding(item.file.path, item.line, 'WG_AUDIT_HEADER_INVALID', `the header names file ${JSON.stringify(file)} but the file name says ${item.file.index}: the file was renamed`);
  const match = keys?.key_id ? trusted.get(keys.key_id) : undefined;
  if (!match || match.ed25519 !== keys?.ed25519 || match.ml_dsa_65 !== keys?.ml_dsa_65) {
    finding(item.file.path, item.line, 'WG_AUDIT_KEY_UNTRUSTED', `the file's public keys (key_id ${JSON.stringify(keys?.key_id ?? null)}) are not among the trusted keys; pass the right --public-key file`);
  }
}

function checkCheckpoint(
  item: Item,
  instance: string,
  hashBySeq: Map<number, string>,
  edited: Set<number>,
  trusted: Map<string, AuditPublicKeys>,
  finding: (file: string, line: number, code: FindingCode, message: string) => void,
): void {
  const { head_seq: headSeq, head_hash: headHash, key_id: keyId, signatures } = item.record as { head_seq?: unknown; head_hash?: unknown; key_id?: unknown; signatures?: unknown };
  const where = [item.file.path, item.line] as const;
  if (typeof headSeq !== 'number' || typeof headHash !== 'string') {
    finding(...where, 'WG_AUDIT_CHECKPOINT_MISMATCH', 'the checkpoint has no head_seq or head_hash: it was edited');
    return;
  }
  const actual = hashBySeq.get(headSeq);
  if (actual !== undefined && actual !== headHash && !edited.has(headSeq)) {
    finding(...where, 'WG_AUDIT_CHECKPOINT_MISMATCH', `the checkpoint signs seq ${headSeq} with hash ${headHash.slice(0, 16)}..., but that record hashes to ${actual.slice(0, 16)}...: the record was edited`);
  }
  const keys = typeof keyId === 'string' ? trusted.get(keyId) : undefined;
  if (!keys) {
    finding(...where, 'WG_AUDIT_KEY_UNTRUSTED', `the checkpoint is signed with key_id ${JSON.stringify(keyId ?? null)}, which is not among the trusted keys`);
    return;
  }
  const valid = verifyCheckpointSignatures({ instance, head_seq: headSeq, head_hash: headHash }, (signatures ?? {}) as object, keys);
  const failed = [valid.ed25519 ? null : 'Ed25519', valid.ml_dsa_65 ? null : 'ML-DSA-65'].filter(Boolean);
  if (failed.length > 0) finding(...where, 'WG_AUDIT_SIGNATURE_INVALID', `the checkpoint's ${failed.join(' and ')} signature${failed.length > 1 ? 's do' : ' does'} not verify: the checkpoint was edited or forged`);
}

function checkEnd(end: Item, options: VerifyOptions, report: VerifyReport): void {
  const { kind, final, head_seq: headSeq } = end.record as { kind: string; final?: unknown; head_seq?: unknown };
  if (kind === 'checkpoint' && final === true && headSeq === end.record.seq - 1) return;

  const entry = { file: end.file.path, line: end.line, code: 'WG_AUDIT_UNSIGNED_TAIL' as const };
  const message = `the trail ends at seq ${end.record.seq} without a final checkpoint, so its last records are not covered by a signature: the file was truncated, or the instance is still running or stopped without a clean close`;
  if (options.allowOpenTail) report.notes.push({ ...entry, message });
  else report.findings.push({ ...entry, message: `${message} (use --open for a running instance)` });
}

function parseRecord(text: string): Item['record'] | null {
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (value === null || typeof value !== 'object' || !Number.isSafeInteger(value.seq) || typeof value.prev !== 'string' || typeof value.kind !== 'string') return null;
    return value as Item['record'];
  } catch {
    return null;
  }
}

function isTorn(value: unknown): value is TornTail {
  const torn = value as Partial<TornTail> | null;
  return typeof torn?.file === 'string' && typeof torn.offset === 'number' && typeof torn.bytes === 'number';
}
