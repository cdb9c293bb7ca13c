import { readFile } from 'node:fs/promises';
import { recordHash } from './canonical.ts';
import { AuditError } from './errors.ts';
import { auditFileName, listAuditFiles } from './files.ts';
import { readHeadState, type HeadState } from './head.ts';

/** The last complete record an earlier run left behind. */
export interface LastRecord {
  readonly seq: number;
  readonly hash: string;
  readonly kind: string;
  readonly time: string | null;
  readonly file: string;
  readonly line: number;
}

/** An incomplete last line: the process died in the middle of a write. */
export interface TornTail {
  readonly file: string;
  readonly line: number;
  /** Byte offset of the torn line in its file. */
  readonly offset: number;
  readonly bytes: number;
}

/** Records that the head state file lists as written but the trail no longer contains. */
export interface MissingRecords {
  /** The position stored in the head state file. */
  readonly recorded: HeadState;
  /** Names of the files after the last one present, up to the recorded one; empty when the recorded file is present but truncated. */
  readonly files: string[];
  /** Describes what is missing, for the gap event. */
  readonly message: string;
}

/** Position of an instance's chain when a new run starts. */
export interface ChainHead {
  /** Highest file index present, or 0 when no file is left; the new run writes to the next unused one. */
  readonly lastFileIndex: number;
  readonly last: LastRecord | null;
  /** Whether the last run ended with a final checkpoint (a clean close). */
  readonly cleanClose: boolean;
  readonly torn: TornTail | null;
  /** Set when the trail ends before the position in the head state file. */
  readonly missing: MissingRecords | null;
  /** Reason the head state file could not be used, or null. */
  readonly headError: string | null;
}

/**
 * Finds the end of an instance's chain in `dir`: the last complete record, any torn line
 * after it, and whether records that the head state file records are missing. Returns null
 * when the instance has neither files nor a head state. Reads files from the newest
 * backwards until one contains a complete record.
 *
 * @throws AuditError `WG_AUDIT_DIR_UNUSABLE` when a trail file cannot be read.
 */
export async function findChainHead(dir: string, instance: string): Promise<ChainHead | null> {
  const { state, error: headError } = await readHeadState(dir, instance);
  const files = (await listAuditFiles(dir)).get(instance) ?? [];
  if (files.length === 0) {
    if (!state && !headError) return null;
    return { lastFileIndex: 0, last: null, cleanClose: false, torn: null, missing: state ? describeMissing(instance, state, 0, null) : null, headError: headError ?? null };
  }

  let torn: TornTail | null = null;
  let last: LastRecord | null = null;
  for (let i = files.length - 1; i >= 0 && !last; i--) {
    const file = files[i]!;
    const content = await readTrailFile(file.path);
    const { complete, tornAt } = splitLines(content);
    if (tornAt !== null && i === files.length - 1) {
      torn = { file: file.name, line: complete.length + 1, offset: tornAt, bytes: content.length - tornAt };
    }
    for (let line = complete.length - 1; line >= 0 && !last; line--) {
      const record = parseRecord(complete[line]!);
      if (record) last = { seq: record.seq, hash: recordHash(record), kind: record.kind, time: typeof record.time === 'string' ? record.time : null, file: file.name, line: line + 1 };
    }
  }

  const lastFileIndex = files[files.length - 1]!.index;
  const cleanClose = !torn && last?.kind === 'checkpoint' && (await lastIsFinal(files[files.length - 1]!.path));
  const missing = state && (last === null || last.seq < state.seq) ? describeMissing(instance, state, lastFileIndex, last) : null;
  return { lastFileIndex, last, cleanClose, torn, missing, headError: headError ?? null };
}

function describeMissing(instance: string, recorded: HeadState, lastFileIndex: number, last: LastRecord | null): MissingRecords {
  const files: string[] = [];
  for (let index = lastFileIndex + 1; index <= recorded.file; index++) files.push(auditFileName(instance, index));
  const from = (last?.seq ?? 0) + 1;
  const records = from === recorded.seq ? `record seq ${recorded.seq} is` : `records seq ${from} to ${recorded.seq} are`;
  const where = files.length > 0 ? `${files.join(', ')} ${files.length === 1 ? 'was' : 'were'} removed` : `${auditFileName(instance, recorded.file)} was truncated`;
  return { recorded, files, message: `the head state file records seq ${recorded.seq} in ${auditFileName(instance, recorded.file)}, but ${records} missing from the trail: ${where}` };
}

async function readTrailFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new AuditError('WG_AUDIT_DIR_UNUSABLE', `Cannot read the audit file ${file} (${code}); restore it or move it out of the audit folder, then start again.`, { cause: error });
  }
}

/** Splits a file into complete lines (ending in a newline) and the offset of a trailing partial line. */
export function splitLines(content: Buffer): { complete: string[]; tornAt: number | null } {
  const end = content.lastIndexOf(0x0a);
  const complete = end === -1 ? [] : content.subarray(0, end).toString('utf8').split('\n');
  const tornAt = end === content.length - 1 ? null : end + 1;
  return { complete, tornAt: tornAt === content.length ? null : tornAt };
}

function parseRecord(line: string): { seq: number; kind: string; time?: unknown; final?: unknown } | null {
  try {
    const value = JSON.parse(line) as { seq?: unknown; kind?: unknown };
    return typeof value.seq === 'number' && typeof value.kind === 'string' ? (value as { seq: number; kind: string }) : null;
  } catch {
    return null;
  }
}

async function lastIsFinal(file: string): Promise<boolean> {
  const { complete } = splitLines(await readTrailFile(file));
  const record = complete.length > 0 ? parseRecord(complete[complete.length - 1]!) : null;
  return record?.kind === 'checkpoint' && record.final === true;
}
