import type { ServerResponse } from 'node:http';

import { StateError } from '../state/errors.ts';
import { IdentityError } from './errors.ts';
import { sendPage } from './pages.ts';

/**
 * Sends the HTML page for a failed sign-in or sign-out route: the message, the error code and a
 * link to start again. `action` names the route's action in the page title.
 */
export function sendRouteError(res: ServerResponse, error: unknown, action: 'Sign-in' | 'Sign-out' = 'Sign-in'): void {
  if (error instanceof StateError) {
    sendPage(res, 503, `${action} is unavailable`, ['The session store is not responding. Try again in a minute.']);
    return;
  }
  if (!(error instanceof IdentityError)) {
    throw error;
  }

  const restart = { href: '/.wardgate/login?return_to=%2F', text: 'Start the sign-in again' };
  res.setHeader('x-wardgate-error', error.code);
  sendPage(res, error.status, pageTitle(error, action), [error.message, `Error code: ${error.code}`], restart);
}

function pageTitle(error: IdentityError, action: string): string {
  if (error.code === 'WG_AUTH_SAVED_REQUEST_TOO_LARGE') {
    return 'Form too large to keep';
  }
  if (error.code === 'WG_AUTH_SAVED_REQUEST_UNKNOWN') {
    return 'Saved form not available';
  }

  return error.status >= 500 ? `${action} is unavailable` : `${action} failed`;
}
