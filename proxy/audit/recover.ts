import { readFile } from 'node:fs/promises';
import { recordHash } from './canonical.ts';
import { listAuditFiles } from './files.ts';

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

/** Where an instance's chain stands when a new run starts. */
export interface ChainHead {
  /** Highest file index present; the new run writes to the next one. */
  readonly lastFileIndex: number;
  readonly last: LastRecord | null;
  /** Whether the last run ended with a final checkpoint (a clean close). */
  readonly cleanClose: boolean;
  readonly torn: TornTail | null;
}

/**
 * Finds the end of an instance's chain in `dir`: the last complete record and any torn
 * line after it. Returns null when the instance has no files yet. Reads files from the
 * newest backwards until one holds a complete record.
 */
export async function findChainHead(dir: string, instance: string): Promise<ChainHead | null> {
  const files = (await listAuditFiles(dir)).get(instance) ?? [];
  if (files.length === 0) return null;

  let torn: TornTail | null = null;
  let last: LastRecord | null = null;
  for (let i = files.length - 1; i >= 0 && !last; i--) {
    const file = files[i]!;
    const content = await readFile(file.path);
    const { complete, tornAt } = splitLines(content);
    if (tornAt !== null && i === files.length - 1) {
      torn = { file: file.name, line: complete.length + 1, offset: tornAt, bytes: content.length - tornAt };
    }
    for (let line = complete.length - 1; line >= 0 && !last; line--) {
      const record = parseRecord(complete[line]!);
      if (record) last = { seq: record.seq, hash: recordHash(record), kind: record.kind, time: typeof record.time === 'string' ? record.time : null, file: file.name, line: line + 1 };
    }
  }

  const cleanClose = !torn && last?.kind === 'checkpoint' && (await lastIsFinal(files[files.length - 1]!.path));
  return { lastFileIndex: files[files.length - 1]!.index, last, cleanClose, torn };
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
  const { complete } = splitLines(await readFile(file));
  const record = complete.length > 0 ? parseRecord(complete[complete.length - 1]!) : null;
  return record?.kind === 'checkpoint' && record.final === true;
}
