import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { access, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';

import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';

import { PolicyError } from '../errors.ts';
import { encodeMlDsaKey, KEY_FILES } from './policy-signature.ts';

/**
 * Generates an Ed25519 and an ML-DSA-65 key pair for signing policies and writes them to
 * `dir` (created with mode 0700 when missing): private keys with mode 0600, public keys
 * with 0644. Refuses to overwrite any existing key file, so that a second run cannot
 * replace keys whose public halves are already deployed. Returns the written paths.
 */
export async function generatePolicyKeys(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });

  const ed25519 = generateKeyPairSync('ed25519');
  const mlDsa = ml_dsa65.keygen(randomBytes(32));
  const files: [string, string, number][] = [
    [KEY_FILES.ed25519Private, ed25519.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600],
    [KEY_FILES.mlDsa65Private, encodeMlDsaKey(mlDsa.secretKey, 'PRIVATE'), 0o600],
    [KEY_FILES.ed25519Public, ed25519.publicKey.export({ format: 'pem', type: 'spki' }) as string, 0o644],
    [KEY_FILES.mlDsa65Public, encodeMlDsaKey(mlDsa.publicKey, 'PUBLIC'), 0o644],
  ];

  for (const [name] of files) {
    const path = join(dir, name);
    const exists = await access(path).then(() => true, () => false);
    if (exists) throw new PolicyError('WG_POLICY_SIGNING_KEY_INVALID', `expected no key file at ${path}, got an existing one; keys are never overwritten, so choose another --out directory or remove the old keys first`);
  }

  const written: string[] = [];
  for (const [name, text, mode] of files) {
    const path = join(dir, name);
    try {
      await using handle = await open(path, 'wx', mode);
      await handle.writeFile(text);
      await handle.chmod(mode);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new PolicyError('WG_POLICY_SIGNING_KEY_INVALID', `expected no key file at ${path}, got an existing one; keys are never overwritten, so choose another --out directory or remove the old keys first`, { cause: error });
      }
      throw new PolicyError('WG_POLICY_SIGNING_KEY_INVALID', `policy keygen: failed to write ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); check the directory's permissions`, { cause: error });
    }
    written.push(path);
  }

  return written;
}
