import type { IncomingMessage, ServerResponse } from 'node:http';

import { isApiClient } from '../identity/request-kind.ts';

/** Returns whether the caller is a browser that should get HTML pages and redirects rather than JSON (the rule of `isApiClient`). */
export function wantsHtml(req: IncomingMessage): boolean {
  return !isApiClient(req);
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => ESCAPES[character]!);
}

/**
 * Sends an error to the caller: JSON `{ error, message, incident_id }` for API clients, a
 * short HTML page for browsers. The message must be safe to show to the caller: it never
 * carries the risk score, the features or the rule's internals.
 */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  incidentId: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const common = { 'cache-control': 'no-store', 'x-wardgate-incident': incidentId, ...headers };
  if (wantsHtml(req)) {
    res.writeHead(status, { ...common, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" });
    res.end(errorPage(status, message, incidentId));
    return;
  }
  res.writeHead(status, { ...common, 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: code, message, incident_id: incidentId }));
}

function errorPage(status: number, message: string, incidentId: string): string {
  const title = status === 403 ? 'Access blocked' : status === 503 ? 'Service temporarily unavailable' : 'Request rejected';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#eee;padding:.1rem .3rem}</style></head>
<body><h1>${title}</h1>
<p>${escapeHtml(message)}</p>
<p>If you need this access for patient care, call the IT service desk and give them this incident id:</p>
<p><code>${escapeHtml(incidentId)}</code></p>
</body></html>
`;
}
