import type { ServerResponse } from 'node:http';

import type { IdentityErrorCode } from './errors.ts';

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Sends a small self-contained HTML page that is never cached and runs no script. */
export function sendPage(res: ServerResponse, status: number, title: string, paragraphs: readonly string[], link?: { href: string; text: string }): void {
  const body = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
    `<title>${escapeHtml(title)}</title></head><body>`,
    `<h1>${escapeHtml(title)}</h1>`,
    ...paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    link === undefined ? '' : `<p><a href="${escapeHtml(link.href)}">${escapeHtml(link.text)}</a></p>`,
    '</body></html>',
  ].join('\n');

  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
  res.setHeader('x-content-type-options', 'nosniff');
  res.end(body);
}

/** Sends a JSON error `{ error, message }` for API clients. */
export function sendJsonError(res: ServerResponse, status: number, code: IdentityErrorCode, message: string, wwwAuthenticate?: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('cache-control', 'no-store');
  if (wwwAuthenticate !== undefined) {
    res.setHeader('www-authenticate', wwwAuthenticate);
  }
  res.end(JSON.stringify({ error: code, message }));
}
