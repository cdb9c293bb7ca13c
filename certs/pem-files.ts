import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';

import { CertsError } from './errors.ts';

/** Creates `dir` (and its parents) if needed and restricts it to its owner (mode 0700). */
export async function ensurePrivateDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  } catch (cause) {
    throw new CertsError('WG_CERTS_WRITE_FAILED', `Could not create the certificate directory "${dir}": ${(cause as Error).message}. Check the path and its permissions, or pass another --dir.`, { cause });
  }
}

/**
 * Writes `data` to `path` atomically: the content goes to a temporary file in the same
 * directory, created with `mode`, which is then renamed over `path`. A reader never sees
 * a half-written file, and a private key never exists with wider permissions than `mode`.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const temporaryPath = `${path}.${randomUUID()}.tmp`;

  try {
    await writeFile(temporaryPath, data, { mode, flag: 'wx' });
    await chmod(temporaryPath, mode);
    await rename(temporaryPath, path);
  } catch (cause) {
    await rm(temporaryPath, { force: true });
    throw new CertsError('WG_CERTS_WRITE_FAILED', `Could not write "${path}": ${(cause as Error).message}. Check the directory permissions.`, { cause });
  }
}

/** Returns the file's text, or `undefined` when it does not exist. */
export async function readOptionalFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CertsError('WG_CERTS_WRITE_FAILED', `Could not read "${path}": ${(cause as Error).message}. Check the file permissions.`, { cause });
  }
}
