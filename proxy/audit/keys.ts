import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { AuditError } from './errors.ts';

/** File names inside the key folder. */
export const KEY_FILES = Object.freeze({
  ed25519: 'ed25519.key.pem',
  mlDsa65: 'ml-dsa-65.seed',
  publicKeys: 'audit-public-keys.json',
});

/** The two public keys that verify checkpoints, as base64url of the raw keys. */
export interface AuditPublicKeys {
  readonly ed25519: string;
  readonly ml_dsa_65: string;
  /** First 16 hex digits of SHA-256 over both keys; names the pair in records. */
  readonly key_id: string;
}

/** Private key material handed to the signing worker; kept only as long as the worker needs it. */
export interface AuditSigningKeys {
  /** Ed25519 private key, PKCS#8 DER. */
  readonly ed25519Pkcs8: Uint8Array;
  /** 32-byte ML-DSA-65 key generation seed (FIPS 204 `ξ`). */
  readonly mlDsa65Seed: Uint8Array;
  readonly publicKeys: AuditPublicKeys;
}

/**
 * Loads the checkpoint signing keys from `dir`, or generates both pairs there on first use
 * (folder `0700`, private key files `0600`, public keys in `audit-public-keys.json`).
 *
 * @throws AuditError `WG_AUDIT_KEY_INVALID` when only one private key exists or a file is malformed.
 */
export async function loadOrCreateSigningKeys(dir: string): Promise<AuditSigningKeys> {
  const edFile = path.join(dir, KEY_FILES.ed25519);
  const mlFile = path.join(dir, KEY_FILES.mlDsa65);
  const [edPem, mlHex] = await Promise.all([readOptional(edFile), readOptional(mlFile)]);

  if ((edPem === undefined) !== (mlHex === undefined)) {
    const missing = edPem === undefined ? edFile : mlFile;
    throw new AuditError('WG_AUDIT_KEY_INVALID', `Audit key file ${missing} is missing while its partner exists; restore it from backup, or move both key files away to generate a new pair.`);
  }

  let edKey: KeyObject;
  let seed: Uint8Array;
  if (edPem === undefined || mlHex === undefined) {
    edKey = generateKeyPairSync('ed25519').privateKey;
    seed = randomBytes(32);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writePrivate(edFile, edKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    await writePrivate(mlFile, Buffer.from(seed).toString('hex'));
  } else {
    edKey = parseEd25519(edPem, edFile);
    seed = parseSeed(mlHex, mlFile);
  }

  const publicKeys = derivePublicKeys(edKey, seed);
  await writeAtomically(path.join(dir, KEY_FILES.publicKeys), `${JSON.stringify(publicKeys, null, 2)}\n`, 0o644);
  return { ed25519Pkcs8: new Uint8Array(edKey.export({ format: 'der', type: 'pkcs8' })), mlDsa65Seed: seed, publicKeys };
}

/** Returns the key id of a pair of public keys. */
export function keyIdOf(ed25519: string, mlDsa65: string): string {
  return createHash('sha256').update(`${ed25519}.${mlDsa65}`).digest('hex').slice(0, 16);
}

/**
 * Reads trusted public keys from a file written by {@link loadOrCreateSigningKeys}: one
 * object `{ ed25519, ml_dsa_65 }` or a list of them (for keys that were rotated).
 *
 * @throws AuditError `WG_AUDIT_KEY_INVALID` naming the file and what is wrong with it.
 */
export async function readTrustedPublicKeys(file: string): Promise<AuditPublicKeys[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new AuditError('WG_AUDIT_KEY_INVALID', `Cannot read the trusted public key file ${file} (${reason}); pass --public-key with the audit-public-keys.json of the key folder.`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AuditError('WG_AUDIT_KEY_INVALID', `Trusted public key file ${file} is not valid JSON; expected {"ed25519": "...", "ml_dsa_65": "..."} as written to audit-public-keys.json.`);
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  return items.map((item, index) => {
    const { ed25519, ml_dsa_65: mlDsa65 } = (item ?? {}) as { ed25519?: unknown; ml_dsa_65?: unknown };
    const where = Array.isArray(parsed) ? `${file} entry ${index}` : file;
    if (typeof ed25519 !== 'string' || Buffer.from(ed25519, 'base64url').length !== 32) {
      throw new AuditError('WG_AUDIT_KEY_INVALID', `Invalid ed25519 public key in ${where}: expected 32 bytes as base64url.`);
    }
    if (typeof mlDsa65 !== 'string' || Buffer.from(mlDsa65, 'base64url').length !== ml_dsa65.lengths.publicKey) {
      throw new AuditError('WG_AUDIT_KEY_INVALID', `Invalid ml_dsa_65 public key in ${where}: expected ${ml_dsa65.lengths.publicKey} bytes as base64url.`);
    }
    return { ed25519, ml_dsa_65: mlDsa65, key_id: keyIdOf(ed25519, mlDsa65) };
  });
}

function derivePublicKeys(edKey: KeyObject, seed: Uint8Array): AuditPublicKeys {
  const ed25519 = createPublicKey(edKey).export({ format: 'jwk' }).x!;
  const mlDsa65 = Buffer.from(ml_dsa65.keygen(seed).publicKey).toString('base64url');
  return Object.freeze({ ed25519, ml_dsa_65: mlDsa65, key_id: keyIdOf(ed25519, mlDsa65) });
}

function parseEd25519(pem: string, file: string): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType === 'ed25519') return key;
  } catch {
    // Reported below with the file name.
  }
  throw new AuditError('WG_AUDIT_KEY_INVALID', `Audit key file ${file} does not hold an Ed25519 private key in PKCS#8 PEM; restore it from backup or move both key files away to generate a new pair.`);
}

function parseSeed(text: string, file: string): Uint8Array {
  const trimmed = text.trim();
  if (!/^[0-9a-f]{64}$/i.test(trimmed)) {
    throw new AuditError('WG_AUDIT_KEY_INVALID', `Audit key file ${file} must hold a 32-byte ML-DSA-65 seed as 64 hex digits; restore it from backup or move both key files away to generate a new pair.`);
  }
  return new Uint8Array(Buffer.from(trimmed, 'hex'));
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AuditError('WG_AUDIT_KEY_INVALID', `Cannot read audit key file ${file} (${(error as NodeJS.ErrnoException).code}); check its owner and permissions.`, { cause: error });
  }
}

async function writePrivate(file: string, text: string): Promise<void> {
  await writeAtomically(file, text, 0o600);
  const mode = (await stat(file)).mode & 0o777;
  if (mode !== 0o600) throw new AuditError('WG_AUDIT_KEY_INVALID', `Audit key file ${file} has mode ${mode.toString(8)} instead of 600.`);
}

async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode });
  await chmod(temporary, mode);
  await rename(temporary, file);
}
