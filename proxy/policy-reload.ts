import { fileVersion, watchFileVersion } from '../scorer/file-watch.ts';
import type { Logger } from 'pino';
import { loadPolicyFile, PolicyValidationError, formatIssue, type CompiledPolicy } from '../policy/index.ts';
import type { PolicyVerificationKeys } from '../policy/signing/policy-signature.ts';

export interface PolicyWatcher {
  /** The policy in force. A request reads it once, so it never sees a half-loaded policy. */
  current(): CompiledPolicy;
  /** The error of the last failed reload, or null when the last load succeeded. */
  lastError(): string | null;
  /** Time (ms since the epoch) of the last successful load. */
  loadedAt(): number;
  close(): void;
}

/** Optional settings of {@link watchPolicy}. */
export interface WatchPolicyOptions {
  /** When set, every load and reload requires `<file>.sig` to verify against both keys. */
  readonly signing?: PolicyVerificationKeys;
  /** Name of the configuration key the file comes from, used in log messages; default `policy`. */
  readonly option?: string;
  /** Called after a new policy is in force, for example to reset shadow counters. */
  readonly onReload?: (policy: CompiledPolicy) => void;
  /** Called with true after a reload that changed the policy and false after a failed one (metrics). */
  readonly onReloadResult?: (ok: boolean) => void;
}

/**
 * Loads the policy file and reloads it when it (or, with signing, its `.sig` file)
 * changes. A new file is read, checked, signature-verified and compiled completely before
 * one assignment puts it in force, so a request decides with either the old or the new
 * policy and never with a mix. A file that fails to load leaves the last good policy in
 * force and is reported in the log and by `lastError()`.
 *
 * @throws the load error at start-up, when there is no good policy to keep.
 */
export async function watchPolicy(file: string, routeIds: readonly string[], logger: Logger, pollMs: number, options: WatchPolicyOptions = {}): Promise<PolicyWatcher> {
  const option = options.option ?? 'policy';
  const load = () => loadPolicyFile(file, { routeIds, option, ...(options.signing && { signing: options.signing }) });
  // Versions are taken before the first load, so a change during start-up is not missed.
  const versions = [await fileVersion(file), options.signing !== undefined ? await fileVersion(`${file}.sig`) : ''];
  let active = await load();
  let loadedAt = Date.now();
  let lastError: string | null = null;
  let reloading = Promise.resolve();

  const reload = async () => {
    try {
      const candidate = await load();
      lastError = null;
      if (candidate.hash === active.hash) return;
      active = candidate;
      loadedAt = Date.now();
      logger.info({ option, file, hash: active.hash, rules: active.ruleIds.length }, 'policy reloaded');
      options.onReload?.(active);
      options.onReloadResult?.(true);
    } catch (error) {
      lastError = error instanceof PolicyValidationError ? error.issues.map(formatIssue).join('\n') : (error as Error).message;
      logger.error({ option, file, errors: lastError, hash: active.hash }, 'policy reload failed; the previous policy stays in force');
      options.onReloadResult?.(false);
    }
  };
  const onChange = () => {
    reloading = reloading.then(reload);
  };
  const stops = [watchFileVersion(file, pollMs, versions[0]!, onChange)];
  if (options.signing !== undefined) stops.push(watchFileVersion(`${file}.sig`, pollMs, versions[1]!, onChange));

  return {
    current: () => active,
    lastError: () => lastError,
    loadedAt: () => loadedAt,
    close: () => {
      for (const stop of stops) stop();
    },
  };
}
