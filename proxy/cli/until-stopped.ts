/** How long an unexpected error leaves for closing before the process exits anyway. */
const FATAL_CLOSE_MS = 10_000;

/** The stop of a running service: `stopped` resolves at SIGINT, SIGTERM or the first unexpected error. */
export interface Stopping {
  readonly stopped: Promise<void>;
  /** Returns the exit code: 1 when an unexpected error occurred at any time, else 0. */
  exitCode(): number;
}

/**
 * Waits for SIGINT or SIGTERM, or for an error that nothing caught. The caller then closes the
 * running service, which writes the audit records still in memory, and exits with
 * `exitCode()`. An uncaught error would otherwise end the process at once and lose them. The
 * handlers stay installed while the service closes, so a later error is logged instead of
 * ending the process in the middle of the close. After an error the process exits with 1
 * within 10 seconds, even if closing has not finished.
 */
export function untilStopped(err: NodeJS.WritableStream): Stopping {
  let failed = false;
  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });

  const stop = (): void => resolveStopped();
  const fail = (error: unknown): void => {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (failed) {
      err.write(`wardgate: another unexpected error while closing; still closing: ${detail}\n`);
    } else {
      err.write(`wardgate: unexpected error; closing the audit trail and stopping with exit code 1. Restart Wardgate and report this error: ${detail}\n`);
      setTimeout(() => process.exit(1), FATAL_CLOSE_MS).unref();
    }
    failed = true;
    resolveStopped();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  return { stopped, exitCode: () => (failed ? 1 : 0) };
}
