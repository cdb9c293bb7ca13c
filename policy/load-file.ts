import { open } from 'node:fs/promises';

import { compilePolicy, type CompilePolicyOptions, type CompiledPolicy } from './compile.ts';
import { PolicyError } from './errors.ts';
import { verifyPolicySignature, type PolicyVerificationKeys } from './signing/policy-signature.ts';
import { DEFAULT_MAX_FILE_BYTES } from './yaml/source.ts';

/** Options of {@link loadPolicyFile}. */
export interface LoadPolicyOptions extends CompilePolicyOptions {
  /** When set, the file must have a detached signature `<path>.sig` that verifies against both keys. */
  readonly signing?: PolicyVerificationKeys;
}

/**
 * Reads and compiles a policy file. Throws `WG_POLICY_FILE_READ_FAILED` when the file
 * cannot be read, the signature errors of {@link verifyPolicySignature} when `signing` is
 * set, and {@link compilePolicy}'s errors when it is invalid. A file larger than
 * `maxBytes` is rejected after reading one byte more than the limit, never read whole.
 * The signature is checked over the same bytes that are compiled.
 */
export async function loadPolicyFile(path: string, options: LoadPolicyOptions = {}): Promise<CompiledPolicy> {
  const bytes = await readAtMost(path, (options.maxBytes ?? DEFAULT_MAX_FILE_BYTES) + 1);

  if (options.signing !== undefined) {
    const signature = await readSignature(`${path}.sig`);
    verifyPolicySignature(path, bytes, signature, options.signing);
  }

  return compilePolicy(bytes, path, options);
}

/** Reads a signature file, or returns `undefined` when it does not exist. */
async function readSignature(path: string): Promise<string | undefined> {
  try {
    return Buffer.from(await readAtMost(path, 64 * 1024 + 1)).toString('utf8');
  } catch (error) {
    if (((error as PolicyError).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Reads up to `limit` bytes of a file. */
export async function readAtMost(path: string, limit: number): Promise<Uint8Array> {
  try {
    await using handle = await open(path, 'r');
    const buffer = Buffer.alloc(limit);
    let length = 0;
    while (length < limit) {
      const { bytesRead } = await handle.read(buffer, length, limit - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.subarray(0, length);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
    throw new PolicyError('WG_POLICY_FILE_READ_FAILED', `policy file ${path}: expected a readable file, got ${reason}; check the path and its permissions`, { cause: error });
  }
}
