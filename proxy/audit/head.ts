import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';

/**
 * The newest position of an instance's chain that the writer has fsync'd, stored in
 * `audit-<instance>.head` next to the trail files. It survives the deletion or truncation
 * of the newest trail file, so that a restart and `audit verify` can detect it.
 */
export interface HeadState {
  readonly instance: string;
  /** Sequence number of the last record fsync'd when the state was written. */
  readonly seq: number;
  /** SHA-256 (hex) of that record's canonical form. */
  readonly head_hash: string;
  /** Index of the file that contains that record. */
  readonly file: number;
}

/** Returns the name of an instance's head state file, e.g. `audit-wg1.head`. */
export function headFileName(instance: string): string {
  return `audit-${instance}.head`;
}

/**
 * Writes the head state atomically: to a temporary file that is fsync'd and then renamed
 * over the old state, so that a crash leaves either the old or the new state.
 */
export async function writeHeadState(dir: string, state: HeadState): Promise<void> {
  const file = path.join(dir, headFileName(state.instance));
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o640);
  try {
    await handle.writeFile(`${JSON.stringify(state)}\n`);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
}

/**
 * Reads an instance's head state from `dir`. Returns `state: null` when the file does not
 * exist, and an `error` message naming the file when it cannot be read or is malformed.
 */
export async function readHeadState(dir: string, instance: string): Promise<{ state: HeadState | null; error?: string }> {
  const file = path.join(dir, headFileName(instance));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: null };
    return { state: null, error: `cannot read the head state file ${file} (${code ?? String(error)})` };
  }

  let value: Partial<HeadState> | null;
  try {
    value = JSON.parse(text) as Partial<HeadState> | null;
  } catch {
    return { state: null, error: `the head state file ${file} is not valid JSON` };
  }
  const valid =
    value !== null &&
    typeof value === 'object' &&
    value.instance === instance &&
    Number.isSafeInteger(value.seq) &&
    value.seq! >= 1 &&
    Number.isSafeInteger(value.file) &&
    value.file! >= 1 &&
    typeof value.head_hash === 'string' &&
    /^[0-9a-f]{64}$/.test(value.head_hash);
  if (!valid || value === null) return { state: null, error: `the head state file ${file} does not hold {"instance": ${JSON.stringify(instance)}, "seq", "file", "head_hash"}` };
  return { state: { instance, seq: value.seq!, head_hash: value.head_hash!, file: value.file! } };
}

const HEAD_FILE_NAME = /^audit-([A-Za-z0-9._]{1,64})\.head$/;

/** Returns the instance ids that have a head state file in `dir`. */
export function headStateInstances(names: readonly string[]): string[] {
  return names.flatMap((name) => {
    const match = HEAD_FILE_NAME.exec(name);
    return match ? [match[1]!] : [];
  });
}
