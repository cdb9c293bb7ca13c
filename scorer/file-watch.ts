import { stat } from 'node:fs/promises';

/** Inode, size and modification time of a file as one string; `missing` when it cannot be read. */
export async function fileVersion(file: string): Promise<string> {
  try {
    const info = await stat(file);
    return `${info.ino}:${info.size}:${info.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/**
 * Polls `file` every `pollMs` and calls `onChange` when its version differs from the last
 * one seen, starting from `initialVersion`. Take that version before reading the file, so a
 * write during start-up counts as a change (fs.watchFile takes its first reading later and
 * would miss it). Returns a function that stops the polling.
 */
export function watchFileVersion(file: string, pollMs: number, initialVersion: string, onChange: () => void): () => void {
  let seen = initialVersion;
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void fileVersion(file).then((version) => {
      checking = false;
      if (version === seen) return;
      seen = version;
      onChange();
    });
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
