import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';

import { readAtMost } from '../load-file.ts';
import { DEFAULT_MAX_FILE_BYTES } from '../yaml/source.ts';
import { PolicyError } from '../errors.ts';
import { readSigningKeys, signPolicy } from './policy-signature.ts';

/**
 * Signs a policy file with the keys in `keyDir` and writes `<file>.sig` next to it. The
 * signature file is written to a temporary name and renamed, so a reader never sees half
 * of it. Returns the signature file's path.
 */
export async function signPolicyFile(keyDir: string, file: string): Promise<string> {
  const keys = await readSigningKeys(keyDir);
  const bytes = await readAtMost(file, DEFAULT_MAX_FILE_BYTES + 1);
  if (bytes.byteLength > DEFAULT_MAX_FILE_BYTES) {
    throw new PolicyError('WG_POLICY_FILE_READ_FAILED', `policy file ${file}: expected at most ${DEFAULT_MAX_FILE_BYTES} bytes, got more; only files Wardgate can load are signed`);
  }

  const target = `${file}.sig`;
  const temporary = `${target}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, signPolicy(bytes, keys), { flag: 'wx', mode: 0o644 });
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new PolicyError('WG_POLICY_FILE_READ_FAILED', `policy sign: failed to write ${target} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); check the directory's permissions`, { cause: error });
  }

  return target;
}
