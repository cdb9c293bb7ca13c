import { createPublicKey, verify } from 'node:crypto';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { canonicalJson } from './canonical.ts';
import type { AuditPublicKeys } from './keys.ts';

/** Domain separation string inside every signed checkpoint message. */
export const CHECKPOINT_CONTEXT = 'wardgate-audit-checkpoint-v1';

/** Content a checkpoint signs: the instance and the chain head (sequence number and hash). */
export interface CheckpointHead {
  readonly instance: string;
  readonly head_seq: number;
  readonly head_hash: string;
}

/** Both signatures of a checkpoint, base64url. */
export interface CheckpointSignatures {
  readonly ed25519: string;
  readonly ml_dsa_65: string;
}

/** Returns the bytes both algorithms sign for a checkpoint. */
export function checkpointMessage(head: CheckpointHead): Uint8Array {
  const text = canonicalJson({ context: CHECKPOINT_CONTEXT, instance: head.instance, head_seq: head.head_seq, head_hash: head.head_hash });
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

/** Checks each signature of a checkpoint against a public key pair; never throws on malformed input. */
export function verifyCheckpointSignatures(head: CheckpointHead, signatures: Partial<CheckpointSignatures>, keys: AuditPublicKeys): { ed25519: boolean; ml_dsa_65: boolean } {
  const message = checkpointMessage(head);
  return {
    ed25519: safely(() => verify(null, message, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: keys.ed25519 }, format: 'jwk' }), Buffer.from(String(signatures.ed25519), 'base64url'))),
    ml_dsa_65: safely(() => ml_dsa65.verify(Buffer.from(String(signatures.ml_dsa_65), 'base64url'), message, Buffer.from(keys.ml_dsa_65, 'base64url'))),
  };
}

function safely(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}
