import { open } from 'node:fs/promises';

import { compilePolicy, type CompilePolicyOptions, type CompiledPolicy } from './compile.ts';
import { PolicyError } from './errors.ts';
import { DEFAULT_MAX_FILE_BYTES } from './yaml/source.ts';

/**
 * Reads and compiles a policy file. Throws `WG_POLICY_FILE_READ_FAILED` when the file
 * cannot be read and {@link compilePolicy}'s errors when it is invalid. A file larger
 * than `maxBytes` is rejected after reading one byte more than the limit, never read whole.
 */
export async function loadPolicyFile(path: string, options: CompilePolicyOptions = {}): Promise<CompiledPolicy> {
  const bytes = await readAtMost(path, (options.maxBytes ?? DEFAULT_MAX_FILE_BYTES) + 1);

  return compilePolicy(bytes, path, options);
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
