import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';

import { PolicyError } from '../errors.ts';

/**
 * ML-DSA context string (FIPS 204, section 5.2) for policy signatures, so that a policy
 * signature can never be taken for a signature made by another part of Wardgate.
 */
const ML_DSA_CONTEXT = new TextEncoder().encode('wardgate-policy-v1');
/** Upper bound on the size of a `.sig` file; a real one is about 4.5 KiB. */
const MAX_SIGNATURE_FILE_BYTES = 64 * 1024;

/** Contents of a detached `FILE.sig`: both signatures over the SHA-512 digest of the policy file's bytes. */
export interface PolicySignatureFile {
  readonly version: 1;
  readonly digest: 'sha512';
  /** SHA-512 of the signed file's bytes, lowercase hex; informative, the signatures are what is checked. */
  readonly sha512: string;
  readonly ed25519: string;
  readonly ml_dsa_65: string;
}

/** Public keys that a signed policy must verify against; both signatures must be valid. */
export interface PolicyVerificationKeys {
  readonly ed25519: KeyObject;
  readonly mlDsa65: Uint8Array;
}

/** Private keys for signing policies. */
export interface PolicySigningKeys {
  readonly ed25519: KeyObject;
  readonly mlDsa65: Uint8Array;
}

/** Signs the policy bytes with both keys and returns the `.sig` file's JSON text. */
export function signPolicy(bytes: Uint8Array, keys: PolicySigningKeys): string {
  const digest = createHash('sha512').update(bytes).digest();
  const signature: PolicySignatureFile = {
    version: 1,
    digest: 'sha512',
    sha512: digest.toString('hex'),
    ed25519: sign(null, digest, keys.ed25519).toString('base64'),
    ml_dsa_65: Buffer.from(ml_dsa65.sign(digest, keys.mlDsa65, { context: ML_DSA_CONTEXT })).toString('base64'),
  };

  return `${JSON.stringify(signature, null, 2)}\n`;
}

/**
 * Checks the detached signature of a policy file. Throws `WG_POLICY_SIGNATURE_MISSING`
 * when `signatureText` is undefined and `WG_POLICY_SIGNATURE_INVALID` naming the failed
 * algorithm when either signature does not verify.
 */
export function verifyPolicySignature(file: string, bytes: Uint8Array, signatureText: string | undefined, keys: PolicyVerificationKeys): void {
  if (signatureText === undefined) {
    throw new PolicyError('WG_POLICY_SIGNATURE_MISSING', `policy file ${file}: expected a signature file ${file}.sig because policy_signing.required is true, got none; sign the file with "wardgate policy sign --key-dir DIR ${file}"`);
  }

  const signature = parseSignatureFile(file, signatureText);
  const digest = createHash('sha512').update(bytes).digest();
  const invalid = (algorithm: string): never => {
    throw new PolicyError('WG_POLICY_SIGNATURE_INVALID', `policy file ${file}: expected a valid ${algorithm} signature in ${file}.sig, got one that does not verify against the configured public key; the file changed after signing or was signed with another key, so sign it again`);
  };

  if (!verify(null, digest, keys.ed25519, Buffer.from(signature.ed25519, 'base64'))) invalid('Ed25519');
  let mlDsaValid = false;
  try {
    mlDsaValid = ml_dsa65.verify(Buffer.from(signature.ml_dsa_65, 'base64'), digest, keys.mlDsa65, { context: ML_DSA_CONTEXT });
  } catch {
    mlDsaValid = false;
  }
  if (!mlDsaValid) invalid('ML-DSA-65');
}

function parseSignatureFile(file: string, text: string): PolicySignatureFile {
  const malformed = (got: string): never => {
    throw new PolicyError('WG_POLICY_SIGNATURE_INVALID', `policy signature ${file}.sig: expected JSON with version 1, digest "sha512", ed25519 and ml_dsa_65 in base64, got ${got}; sign the file again`);
  };
  if (text.length > MAX_SIGNATURE_FILE_BYTES) malformed(`${text.length} bytes`);

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return malformed('text that is not JSON');
  }
  const signature = value as Partial<PolicySignatureFile> | null;
  if (typeof signature !== 'object' || signature === null || signature.version !== 1 || signature.digest !== 'sha512') return malformed('another format');
  if (typeof signature.ed25519 !== 'string' || typeof signature.ml_dsa_65 !== 'string') return malformed('missing signatures');

  return signature as PolicySignatureFile;
}

/**
 * Reads the two public keys named by `policy_signing`. Throws
 * `WG_POLICY_SIGNING_KEY_INVALID` naming the file when one is missing or unusable.
 */
export async function readVerificationKeys(ed25519File: string, mlDsa65File: string): Promise<PolicyVerificationKeys> {
  const ed25519 = await readKeyFile(ed25519File, 'policy_signing.ed25519_public_key', (text) => {
    const key = createPublicKey(text);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${String(key.asymmetricKeyType)} key`);
    return key;
  });
  const mlDsa65 = await readKeyFile(mlDsa65File, 'policy_signing.ml_dsa_65_public_key', (text) => decodeMlDsaKey(text, 'PUBLIC', ml_dsa65.lengths.publicKey!));

  return { ed25519, mlDsa65 };
}

/** Reads the private keys that `wardgate policy keygen` wrote into `dir`. */
export async function readSigningKeys(dir: string): Promise<PolicySigningKeys> {
  const ed25519 = await readKeyFile(`${dir}/${KEY_FILES.ed25519Private}`, '--key-dir', (text) => createPrivateKey(text));
  const mlDsa65 = await readKeyFile(`${dir}/${KEY_FILES.mlDsa65Private}`, '--key-dir', (text) => decodeMlDsaKey(text, 'PRIVATE', ml_dsa65.lengths.secretKey!));

  return { ed25519, mlDsa65 };
}

/** File names that `wardgate policy keygen` writes. */
export const KEY_FILES = Object.freeze({
  ed25519Private: 'policy-ed25519.key',
  ed25519Public: 'policy-ed25519.pub',
  mlDsa65Private: 'policy-ml-dsa-65.key',
  mlDsa65Public: 'policy-ml-dsa-65.pub',
});

/** Encodes an ML-DSA-65 key as PEM-style text with the label `ML-DSA-65 PUBLIC KEY` or `ML-DSA-65 PRIVATE KEY` (raw FIPS 204 encoding inside). */
export function encodeMlDsaKey(key: Uint8Array, kind: 'PUBLIC' | 'PRIVATE'): string {
  const base64 = Buffer.from(key).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ML-DSA-65 ${kind} KEY-----\n${base64}\n-----END ML-DSA-65 ${kind} KEY-----\n`;
}

function decodeMlDsaKey(text: string, kind: 'PUBLIC' | 'PRIVATE', length: number): Uint8Array {
  const match = new RegExp(`-----BEGIN ML-DSA-65 ${kind} KEY-----([A-Za-z0-9+/=\\s]+)-----END ML-DSA-65 ${kind} KEY-----`).exec(text);
  if (match === null) throw new Error(`no "ML-DSA-65 ${kind} KEY" block`);
  const bytes = Buffer.from(match[1]!.replace(/\s/g, ''), 'base64');
  if (bytes.length !== length) throw new Error(`a key of ${bytes.length} bytes instead of ${length}`);

  return new Uint8Array(bytes);
}

async function readKeyFile<T>(file: string, option: string, parse: (text: string) => T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new PolicyError('WG_POLICY_SIGNING_KEY_INVALID', `${option}: expected a readable key file ${file}, got ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; run "wardgate policy keygen --out DIR" or fix the path`, { cause: error });
  }
  try {
    return parse(text);
  } catch (error) {
    throw new PolicyError('WG_POLICY_SIGNING_KEY_INVALID', `${option}: expected a key written by "wardgate policy keygen" in ${file}, got ${(error as Error).message}; fix the path or generate new keys`, { cause: error });
  }
}
