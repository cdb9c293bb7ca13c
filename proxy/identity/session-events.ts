/**
 * Messages that a {@link SessionStore} publishes when sessions end or get a new id, so that
 * every instance sharing the store can close or move the WebSockets it holds for them.
 */
export const SESSION_EVENTS_CHANNEL = 'session-events';

export type SessionEvent =
  /** The sessions were deleted: by sign-out, back-channel logout, revocation or expiry found on use. */
  | { readonly ended: readonly string[] }
  /** Session `from` was replaced by `to` (sign-in over an old session, step-up), so its sockets stay open under `to`. */
  | { readonly renamed: { readonly from: string; readonly to: string } };

const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Returns whether `id` has the form of a session id: 256 bits in base64url without padding. */
export function isSessionId(id: unknown): id is string {
  return typeof id === 'string' && SESSION_ID_PATTERN.test(id);
}

export function encodeSessionEvent(event: SessionEvent): string {
  return JSON.stringify(event);
}

/**
 * Parses a message from the channel. Returns null for anything else than one well-formed
 * event, because any client with access to Redis can publish on the channel.
 */
export function parseSessionEvent(message: string): SessionEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Object.keys(value).length !== 1) {
    return null;
  }

  const { ended, renamed } = value as { ended?: unknown; renamed?: { from?: unknown; to?: unknown } };
  if (Array.isArray(ended) && ended.every(isSessionId)) {
    return { ended };
  }
  if (typeof renamed === 'object' && renamed !== null && isSessionId(renamed.from) && isSessionId(renamed.to)) {
    return { renamed: { from: renamed.from, to: renamed.to } };
  }

  return null;
}
