import type { Node } from 'yaml';

import type { OptionReader } from './reader.ts';

/** `policy_signing` from the configuration: whether policy files must carry a valid detached signature. */
export interface PolicySigningConfig {
  readonly required: boolean;
  /** Absolute path of the Ed25519 public key (SPKI PEM) written by `wardgate policy keygen`. */
  readonly ed25519_public_key?: string;
  /** Absolute path of the ML-DSA-65 public key written by `wardgate policy keygen`. */
  readonly ml_dsa_65_public_key?: string;
}

/**
 * Reads `shadow_policy` and `policy_signing`. With `required: true` both public keys must
 * be configured; a missing one is reported at the `policy_signing` block.
 */
export function readPolicyOptions(
  reader: OptionReader,
  top: Map<string, Node>,
  resolve: (value: string) => string,
): { shadow_policy?: string; policy_signing?: PolicySigningConfig } {
  const shadow = reader.optionalString(top.get('shadow_policy'), 'shadow_policy');
  const signingNode = top.get('policy_signing');
  if (signingNode === undefined) return shadow === undefined ? {} : { shadow_policy: resolve(shadow) };

  const signing = reader.map(signingNode, 'policy_signing', ['required', 'ed25519_public_key', 'ml_dsa_65_public_key']) ?? new Map<string, Node>();
  const required = reader.boolean(signing.get('required'), 'policy_signing.required', false);
  const ed25519 = reader.optionalString(signing.get('ed25519_public_key'), 'policy_signing.ed25519_public_key');
  const mlDsa = reader.optionalString(signing.get('ml_dsa_65_public_key'), 'policy_signing.ml_dsa_65_public_key');
  if (required && ed25519 === undefined) reader.report(signingNode, 'policy_signing.ed25519_public_key', 'expected the Ed25519 public key file because policy_signing.required is true; run "wardgate policy keygen --out DIR" and name DIR/policy-ed25519.pub');
  if (required && mlDsa === undefined) reader.report(signingNode, 'policy_signing.ml_dsa_65_public_key', 'expected the ML-DSA-65 public key file because policy_signing.required is true; run "wardgate policy keygen --out DIR" and name DIR/policy-ml-dsa-65.pub');

  return {
    ...(shadow !== undefined && { shadow_policy: resolve(shadow) }),
    policy_signing: {
      required,
      ...(ed25519 !== undefined && { ed25519_public_key: resolve(ed25519) }),
      ...(mlDsa !== undefined && { ml_dsa_65_public_key: resolve(mlDsa) }),
    },
  };
}
