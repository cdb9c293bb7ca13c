import { NotRegularFileError, readRegularFile } from '../scorer/regular-file.ts';
import { compilePolicy, type CompilePolicyOptions, type CompiledPolicy } from './compile.ts';
import { PolicyError } from './errors.ts';
import { verifyPolicySignature, type PolicyVerificationKeys } from './signing/policy-signature.ts';
import { DEFAULT_MAX_FILE_BYTES } from './yaml/source.ts';

/** Options of {@link loadPolicyFile}. */
export interface LoadPolicyOptions extends CompilePolicyOptions {
  /** When set, the file must have a detached signature `<path>.sig` that verifies against both keys. */
  readonly signing?: PolicyVerificationKeys;
  /** Name of the setting that gave the path (`policy`, `shadow_policy`), for the message when it is not a regular file. */
  readonly option?: string;
}

/**
 * Reads and compiles a policy file. Throws `WG_POLICY_FILE_READ_FAILED` when the file
 * cannot be read or is not a regular file (a FIFO, socket, device or directory), the
 * signature errors of {@link verifyPolicySignature} when `signing` is set, and
 * {@link compilePolicy}'s errors when it is invalid. A file larger than
 * `maxBytes` is rejected after reading one byte more than the limit, never read whole.
 * The signature is checked over the same bytes that are compiled.
 */
export async function loadPolicyFile(path: string, options: LoadPolicyOptions = {}): Promise<CompiledPolicy> {
  const fix = options.option === undefined ? undefined : `point ${options.option} at a regular file`;
  const bytes = await readAtMost(path, (options.maxBytes ?? DEFAULT_MAX_FILE_BYTES) + 1, fix);

  if (options.signing !== undefined) {
    const signature = await readSignature(`${path}.sig`);
    verifyPolicySignature(path, bytes, signature, options.signing);
  }

  return compilePolicy(bytes, path, options);
}

/** Reads a signature file, or returns `undefined` when it does not exist. */
async function readSignature(path: string): Promise<string | undefined> {
  try {
    return Buffer.from(await readAtMost(path, 64 * 1024 + 1, 'write it with wardgate policy sign')).toString('utf8');
  } catch (error) {
    if (((error as PolicyError).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Reads up to `limit` bytes of a regular file, without waiting on a FIFO. `regularFileFix`
 * ends the message for a path that is not a regular file.
 */
export async function readAtMost(path: string, limit: number, regularFileFix = 'give the path of a regular file'): Promise<Uint8Array> {
  try {
    return await readRegularFile(path, limit);
  } catch (error) {
    if (error instanceof NotRegularFileError) {
      throw new PolicyError('WG_POLICY_FILE_READ_FAILED', `policy file ${path}: expected a regular file, got ${error.found}; ${regularFileFix}`, { cause: error });
    }
    const reason = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
    throw new PolicyError('WG_POLICY_FILE_READ_FAILED', `policy file ${path}: expected a readable file, got ${reason}; check the path and its permissions`, { cause: error });
  }
}
