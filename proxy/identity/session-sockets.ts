import type { Duplex } from 'node:stream';

/**
 * Upgraded connections (WebSockets) of each session on this instance, so that sign-out,
 * back-channel logout and revocation can close them. Sockets leave the registry when they close.
 */
export class SessionSockets {
  readonly #bySession = new Map<string, Set<Duplex>>();

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

  /**
   * Destroys every socket of the given sessions and returns how many were open.
   * NOTE: this reaches only sockets upgraded on this instance; other instances keep theirs
   * until they close, because revocation is not broadcast between instances.
   */
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

  /** Returns the number of open sockets of a session. */
  count(sessionId: string): number {
    return this.#bySession.get(sessionId)?.size ?? 0;
  }
}
