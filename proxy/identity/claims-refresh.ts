import { IdentityError } from './errors.ts';
import type { OidcClient } from './oidc-client.ts';
import type { SessionRecord, SessionStore } from './session-store.ts';

export interface RefreshContext {
  readonly client: OidcClient;
  readonly sessions: SessionStore;
  /** Unset disables the refresh. */
  readonly intervalS: number | undefined;
  readonly now: () => number;
  /** Called with the id of a session that ended because the IdP rejected its access token. */
  readonly onEnded: (sessionId: string) => void;
}

/**
 * Reads the session's claims again from the IdP's userinfo endpoint once they are older than
 * the configured interval, so that a user removed from a group loses that access within the
 * interval. Returns the record to use, or null when the IdP no longer accepts the session's
 * access token. In that case the session is deleted and the browser must sign in again.
 * Throws `WG_AUTH_IDP_UNAVAILABLE` when the IdP cannot be reached: the claims are not trusted past
 * their interval, so the request fails closed.
 */
export async function refreshClaims(context: RefreshContext, sessionId: string, record: SessionRecord, now: number): Promise<SessionRecord | null> {
  if (context.intervalS === undefined || now - (record.claims_refreshed_at ?? record.created_at) < context.intervalS * 1000) {
    return record;
  }
  if (record.access_token === undefined) {
    throw new IdentityError('WG_AUTH_IDP_UNAVAILABLE', 'This session has no access token, so its claims cannot be refreshed. Sign out and sign in again.');
  }

  const claims = await context.client.userinfo(record.access_token, record.subject);
  if (claims === null) {
    await context.sessions.delete(sessionId);
    context.onEnded(sessionId);
    return null;
  }

  const refreshed: SessionRecord = {
    ...record,
    groups: claims.groups ?? [],
    ...(claims.email === undefined ? {} : { email: claims.email }),
    ...(claims.name === undefined ? {} : { name: claims.name }),
    claims_refreshed_at: now,
  };

  return await context.sessions.update(sessionId, refreshed, now) ? refreshed : null;
}
