/** How long a fatal error leaves for closing before the process exits anyway. */
const FATAL_CLOSE_MS = 10_000;

/**
 * Waits for SIGINT or SIGTERM, or for an error that nothing caught, and returns the exit code:
 * 0 for a signal, 1 for an error. The caller then closes the running service, which writes the
 * audit records still in memory. An uncaught error would otherwise end the process at once and
 * lose them. If closing takes longer than 10 seconds after an error, the process exits with 1.
 */
export function untilStopped(err: NodeJS.WritableStream): Promise<number> {
  return new Promise<number>((resolve) => {
    const stop = (): void => {
      process.off('uncaughtException', fail);
      process.off('unhandledRejection', fail);
      resolve(0);
    };
    const fail = (error: unknown): void => {
      err.write(`wardgate: unexpected error; closing the audit trail and stopping with exit code 1. Restart Wardgate and report this error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      setTimeout(() => process.exit(1), FATAL_CLOSE_MS).unref();
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(1);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    process.once('uncaughtException', fail);
    process.once('unhandledRejection', fail);
  });
}
