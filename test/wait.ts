/**
 * Polls `condition` until it is true or `timeoutMs` of wall time have passed, and returns whether
 * it became true. Timers run late on a loaded machine, so the bound is wall time, not a count of sleeps.
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs = 30_000, intervalMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
