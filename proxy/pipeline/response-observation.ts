import type { ServerResponse } from 'node:http';

import type { ScorerPort } from '../ports.ts';

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
