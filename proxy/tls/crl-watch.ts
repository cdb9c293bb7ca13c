import { unwatchFile, watchFile, type Stats } from 'node:fs';

import { readRegularFileWithin } from '../../scorer/regular-file.ts';
import type { TlsListener } from './listener.ts';

/** Largest CRL file read, at start-up and on reload: 32 MiB, far above the CRL of a large device fleet. */
export const MAX_CRL_BYTES = 32 * 1024 * 1024;

/** Outcome of one CRL reload, for logs and tests. */
export type CrlReloadEvent =
  | { readonly ok: true; readonly file: string; readonly bytes: number }
  | { readonly ok: false; readonly file: string; readonly error: Error };

export interface CrlWatcher {
  /** Stops watching the file. */
  close(): void;
}

/**
 * Watches a PEM CRL file and installs each new version on `listener` with
 * {@link TlsListener.setCrl}, so a revoked client certificate is refused on its next handshake
 * without a restart. A path that is not a regular file, such as a FIFO, fails the reload
 * without waiting on it. The file is polled (`fs.watchFile`, every `intervalMs`) because polling
 * also detects a file replaced by rename, as CRL distribution tools do. A file that cannot be read
 * or that OpenSSL rejects leaves the previous CRL in force and is reported to `onReload`.
 */
export function watchCrl(file: string, listener: Pick<TlsListener, 'setCrl'>, onReload: (event: CrlReloadEvent) => void, intervalMs = 1000): CrlWatcher {
  let running = Promise.resolve();

  const reload = async (): Promise<void> => {
    try {
      const crl = await readRegularFileWithin(file, MAX_CRL_BYTES, { option: 'tls.crl' });
      listener.setCrl(crl);
      onReload({ ok: true, file, bytes: crl.length });
    } catch (error) {
      onReload({ ok: false, file, error: error as Error });
    }
  };

  const onChange = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino) return;
    // Reloads run one after another, so an older read can never overwrite a newer CRL.
    running = running.then(reload);
  };

  watchFile(file, { interval: intervalMs, persistent: false }, onChange);

  return { close: () => unwatchFile(file, onChange) };
}
