import type { ServerResponse } from 'node:http';

import type { ScorerPort } from '../ports.ts';

/** Icons that browsers request by themselves: `/favicon.ico` and Apple's touch icons at the site root. */
const BROWSER_ICON_PATH = /^\/(?:favicon\.ico|apple-touch-icon(?:-\d+x\d+)?(?:-precomposed)?\.png)$/i;

/**
 * Returns whether `pathname` is an icon that browsers request without the user asking. Its
 * response is not observed: an application without one responds 404 on every page view, which
 * `denied_hour` would count as probing.
 */
export function isBrowserIconPath(pathname: string): boolean {
  return BROWSER_ICON_PATH.test(pathname);
}

/**
 * Reports the response of a scored request to the scorer once it has been sent, for the
 * response-side features (bytes, 403/404 probing). It runs on `finish`, off the request path,
 * and the scorer's `observeResponse` returns at once and catches its own errors. Bytes are the
 * bytes the socket wrote for this response, headers included, for proxied and local responses.
 */
export function observeResponseOnFinish(
  res: ServerResponse,
  scorer: ScorerPort,
  request: { readonly user: string; readonly groups: readonly string[]; readonly time: number; readonly routeId: string },
): void {
  if (scorer.observeResponse === undefined) {
    return;
  }

  const socket = res.socket;
  const bytesBefore = socket?.bytesWritten ?? 0;
  res.once('finish', () => {
    const bytes = Math.max(0, (socket?.bytesWritten ?? bytesBefore) - bytesBefore);
    scorer.observeResponse!({ ...request, status: res.statusCode, bytes });
  });
}
