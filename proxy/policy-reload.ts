import { watchFile, unwatchFile } from 'node:fs';
import type { Logger } from 'pino';
import { loadPolicyFile, PolicyValidationError, formatIssue, type CompiledPolicy } from '../policy/index.ts';

export interface PolicyWatcher {
  /** The policy in force. A request reads it once, so it never sees a half-loaded policy. */
  current(): CompiledPolicy;
  /** The error of the last failed reload, or null when the last load succeeded. */
  lastError(): string | null;
  close(): void;
}

/**
 * Loads the policy file and reloads it when it changes. A file that fails to load leaves
 * the last good policy in force and is reported in the log and by `lastError()`.
 * `onReload` gets true after a reload that changed the policy and false after a failed one.
 *
 * @throws the load error at start-up, when there is no good policy to keep.
 */
export async function watchPolicy(file: string, routeIds: readonly string[], logger: Logger, pollMs: number, onReload?: (ok: boolean) => void): Promise<PolicyWatcher> {
  let active = await loadPolicyFile(file, { routeIds });
  let lastError: string | null = null;
  let reloading = Promise.resolve();

  const reload = async () => {
    try {
      const candidate = await loadPolicyFile(file, { routeIds });
      if (candidate.hash === active.hash) return;
      active = candidate;
      lastError = null;
      logger.info({ file, hash: active.hash }, 'policy reloaded');
      onReload?.(true);
    } catch (error) {
      lastError = error instanceof PolicyValidationError ? error.issues.map(formatIssue).join('\n') : (error as Error).message;
      logger.error({ file, errors: lastError, hash: active.hash }, 'policy reload failed; the previous policy stays in force');
      onReload?.(false);
    }
  };
  const onChange = () => {
    reloading = reloading.then(reload);
  };
  watchFile(file, { interval: pollMs, persistent: false }, onChange);

  return {
    current: () => active,
    lastError: () => lastError,
    close: () => unwatchFile(file, onChange),
  };
}
