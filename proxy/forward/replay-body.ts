import type { IncomingMessage } from 'node:http';

const bodies = new WeakMap<IncomingMessage, Buffer>();

/**
 * Attaches a saved body to a request whose own stream is empty, as when a POST kept across a
 * step-up is replayed from a GET redirect. The forwarder sends this body in place of the stream.
 */
export function attachReplayBody(req: IncomingMessage, body: Buffer): void {
  bodies.set(req, body);
}

/** Returns the body attached by {@link attachReplayBody}, or undefined for an ordinary request. */
export function replayBodyOf(req: IncomingMessage): Buffer | undefined {
  return bodies.get(req);
}
