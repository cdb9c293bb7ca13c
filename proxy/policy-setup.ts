import type { Logger } from 'pino';

import { ShadowComparator } from '../policy/shadow/shadow-comparator.ts';
import { readVerificationKeys, type PolicyVerificationKeys } from '../policy/signing/policy-signature.ts';
import type { WardgateConfig } from './config/config.ts';
import { createShadowLogLimit, type ShadowPort } from './pipeline/shadow-mode.ts';
import { watchPolicy, type PolicyWatcher } from './policy-reload.ts';

/** The active policy, the optional shadow candidate and what the health endpoint shows about them. */
export interface PolicySetup {
  readonly active: PolicyWatcher;
  readonly shadow: ShadowPort | undefined;
  /** Health fields for the shadow policy, or `undefined` without `shadow_policy`. */
  shadowHealth(): Record<string, unknown> | undefined;
  close(): void;
}

/**
 * Reads the signing keys when `policy_signing.required` is set, then loads and watches
 * `policy` and, when configured, `shadow_policy`. Both files go through the same checks;
 * the shadow counters restart whenever either policy changes, so they always describe one
 * pair of policies.
 *
 * @throws the key or load error at start-up.
 */
export async function startPolicies(config: WardgateConfig, logger: Logger, pollMs: number, onReloadResult?: (ok: boolean) => void): Promise<PolicySetup> {
  const routeIds = config.routes.map((route) => route.id);
  const signingConfig = config.policy_signing;
  let signing: PolicyVerificationKeys | undefined;
  if (signingConfig?.required === true) {
    signing = await readVerificationKeys(signingConfig.ed25519_public_key!, signingConfig.ml_dsa_65_public_key!);
  }

  const comparator = new ShadowComparator();
  const reset = () => comparator.reset();
  const active = await watchPolicy(config.policy, routeIds, logger, pollMs, { ...(signing && { signing }), onReload: reset, ...(onReloadResult && { onReloadResult }) });
  let candidate: PolicyWatcher | undefined;
  try {
    if (config.shadow_policy !== undefined) {
      candidate = await watchPolicy(config.shadow_policy, routeIds, logger, pollMs, { ...(signing && { signing }), option: 'shadow_policy', onReload: reset });
      logger.info({ file: config.shadow_policy, hash: candidate.current().hash }, 'shadow policy loaded; it is evaluated on every request and never enforced');
    }
  } catch (error) {
    active.close();
    throw error;
  }

  const shadowWatcher = candidate;
  return {
    active,
    shadow: shadowWatcher === undefined ? undefined : { comparator, candidate: () => shadowWatcher.current(), logLimit: createShadowLogLimit() },
    shadowHealth: () => shadowWatcher === undefined
      ? undefined
      : { hash: shadowWatcher.current().hash, last_reload_error: shadowWatcher.lastError(), ...comparator.counters() },
    close: () => {
      active.close();
      shadowWatcher?.close();
    },
  };
}
