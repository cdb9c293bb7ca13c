import type { Duplex } from 'node:stream';

import type { KeyValueStore } from '../state/key-value-store.ts';
import { parseSessionEvent, SESSION_EVENTS_CHANNEL } from './session-events.ts';

/** Default interval of {@link SessionSockets.recheck}, in milliseconds. */
export const DEFAULT_SOCKET_RECHECK_MS = 30_000;

export interface SessionSocketsOptions {
  /** Store whose {@link SESSION_EVENTS_CHANNEL} carries the session events of all instances. */
  readonly store: KeyValueStore;
  /** Returns the ids among `ids` whose sessions still exist (`SessionStore.liveIds`). */
  readonly liveIds: (ids: readonly string[]) => Promise<Set<string>>;
  /** Interval between two re-checks of the open sockets' sessions, in milliseconds; default 30000. */
  readonly recheckIntervalMs?: number;
  /** Receives the error of a failed re-check, which no request would report. The next interval tries again. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Upgraded connections (WebSockets) of each session on this instance, so that sign-out,
 * back-channel logout and revocation can close them. Sockets leave the registry when they close.
 *
 * The instance that ends a session closes its own sockets at once. The other instances
 * close theirs when the session event published by `SessionStore` arrives. Pub/sub delivers
 * at most once, so every `recheckIntervalMs`, and after a lost subscription is restored, the
 * registry also closes the sockets of every session that no longer exists in the store.
 */
export class SessionSockets {
  readonly #bySession = new Map<string, Set<Duplex>>();
  readonly #options: SessionSocketsOptions;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #recheck: Promise<number> | undefined;

  constructor(options: SessionSocketsOptions) {
    this.#options = options;
  }

  /** Subscribes to the session events and starts the periodic re-check. */
  async start(): Promise<void> {
    if (this.#unsubscribe !== undefined) {
      return;
    }

    this.#unsubscribe = await this.#options.store.subscribe(SESSION_EVENTS_CHANNEL, {
      onMessage: (message) => this.#apply(message),
      onResubscribe: () => void this.recheck(),
    });
    this.#timer = setInterval(() => void this.recheck(), this.#options.recheckIntervalMs ?? DEFAULT_SOCKET_RECHECK_MS);
    this.#timer.unref();
  }

  /** Stops the re-check and the subscription; the sockets stay open. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.();
  }

  /** Registers `socket` under `sessionId` until it closes. */
  add(sessionId: string, socket: Duplex): void {
    const sockets = this.#bySession.get(sessionId) ?? new Set<Duplex>();
    this.#bySession.set(sessionId, sockets);
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.#bySession.get(sessionId) === sockets) {
        this.#bySession.delete(sessionId);
      }
    });
  }

  /** Moves the sockets of a session whose id changed (sign-in over an old session, step-up). */
  rename(oldId: string, newId: string): void {
    const sockets = this.#bySession.get(oldId);
    if (sockets === undefined || oldId === newId) {
      return;
    }

    this.#bySession.delete(oldId);
    for (const socket of sockets) {
      this.add(newId, socket);
    }
  }

  /** Destroys every socket of the given sessions on this instance and returns how many were open. */
  close(sessionIds: Iterable<string>): number {
    let closed = 0;
    for (const id of sessionIds) {
      for (const socket of this.#bySession.get(id) ?? []) {
        socket.destroy();
        closed += 1;
      }
      this.#bySession.delete(id);
    }

    return closed;
  }

  /**
   * Closes the sockets of every session that no longer exists in the store, whether it was
   * deleted or expired, and returns how many sockets it closed. Only one re-check runs at a
   * time: a call during a running one returns that one's result.
   */
  recheck(): Promise<number> {
    this.#recheck ??= this.#closeEnded().finally(() => {
      this.#recheck = undefined;
    });
    return this.#recheck;
  }

  /** Returns the number of open sockets of a session. */
  count(sessionId: string): number {
    return this.#bySession.get(sessionId)?.size ?? 0;
  }

  async #closeEnded(): Promise<number> {
    const ids = [...this.#bySession.keys()];
    if (ids.length === 0) {
      return 0;
    }

    try {
      const live = await this.#options.liveIds(ids);
      return this.close(ids.filter((id) => !live.has(id)));
    } catch (error) {
      this.#options.onError?.(error);
      return 0;
    }
  }

  #apply(message: string): void {
    const event = parseSessionEvent(message);
    if (event === null) {
      return;
    }

    if ('ended' in event) {
      this.close(event.ended);
    } else {
      this.rename(event.renamed.from, event.renamed.to);
    }
  }
}
