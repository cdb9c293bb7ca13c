import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

import { HttpError } from './errors.ts';

/**
 * Rejects requests whose framing or host two HTTP implementations could read differently
 * (request smuggling). It reads `req.rawHeaders`, which contains every copy of a header.
 *
 * - Content-Length together with Transfer-Encoding (RFC 9112 section 6.1 lets a server
 *   reject it; a proxy that forwards it invites desynchronization).
 * - More than one Content-Length, or one that is not a plain decimal number.
 * - More than one Host, or none on HTTP/1.1 (RFC 9112 section 3.2).
 * - A header value that still contains CR or LF (obs-fold, RFC 9112 section 5.2).
 * - Transfer-Encoding other than a single `chunked` (RFC 9112 section 6.1: codings such as
 *   `gzip, chunked` are read differently by upstreams; Wardgate forwards only plain chunked).
 *
 * Node 24.21's parser (llhttp) already answers 400 to Content-Length with Transfer-Encoding,
 * duplicate Content-Length, obs-fold and a missing Host before a request object exists; it
 * lets a second Host header through. This check covers all cases, so the result does not
 * depend on parser options such as `insecureHTTPParser`.
 *
 * @throws {HttpError} `WG_HTTP_AMBIGUOUS_FRAMING` (also for transfer codings other than chunked), `WG_HTTP_BAD_HOST` or `WG_HTTP_OBS_FOLD`, all 400.
 */
export function checkFraming(req: Pick<IncomingMessage, 'rawHeaders' | 'httpVersion'>): void {
  const contentLengths: string[] = [];
  const hosts: string[] = [];
  const transferEncodings: string[] = [];

  for (let index = 0; index < req.rawHeaders.length; index += 2) {
    const name = req.rawHeaders[index]!.toLowerCase();
    const value = req.rawHeaders[index + 1] ?? '';

    if (/[\r\n]/.test(value)) {
      throw new HttpError('WG_HTTP_OBS_FOLD', `Header ${req.rawHeaders[index]} is folded over several lines (obs-fold); send each header value on one line.`);
    }

    if (name === 'content-length') contentLengths.push(value);
    else if (name === 'transfer-encoding') transferEncodings.push(value);
    else if (name === 'host') hosts.push(value);
  }

  if (contentLengths.length > 0 && transferEncodings.length > 0) {
    throw new HttpError('WG_HTTP_AMBIGUOUS_FRAMING', 'Request framing is ambiguous: it has both Content-Length and Transfer-Encoding. Send only one of them.');
  }

  if (transferEncodings.length > 1 || (transferEncodings.length === 1 && transferEncodings[0]!.trim().toLowerCase() !== 'chunked')) {
    throw new HttpError('WG_HTTP_AMBIGUOUS_FRAMING', `Transfer-Encoding ${transferEncodings.map((value) => JSON.stringify(value)).join(', ')} is not accepted; send the body with Content-Length or with Transfer-Encoding: chunked alone.`);
  }

  if (contentLengths.length > 1) {
    throw new HttpError('WG_HTTP_AMBIGUOUS_FRAMING', `Request framing is ambiguous: expected one Content-Length header, received ${contentLengths.length} (${contentLengths.map((value) => JSON.stringify(value)).join(', ')}).`);
  }

  if (contentLengths.length === 1 && !/^[0-9]{1,15}$/.test(contentLengths[0]!.trim())) {
    throw new HttpError('WG_HTTP_AMBIGUOUS_FRAMING', `Content-Length is invalid: expected a decimal number of bytes, received ${JSON.stringify(contentLengths[0])}.`);
  }

  if (hosts.length > 1) {
    throw new HttpError('WG_HTTP_BAD_HOST', `Host is ambiguous: expected one Host header, received ${hosts.length} (${hosts.map((value) => JSON.stringify(value)).join(', ')}).`);
  }

  if (hosts.length === 0 && req.httpVersion === '1.1') {
    throw new HttpError('WG_HTTP_BAD_HOST', 'Host is missing: HTTP/1.1 requests must carry exactly one Host header.');
  }
}

/** Methods never forwarded: TRACE and TRACK echo the request (cookies included), CONNECT opens a tunnel. */
const REFUSED_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);

/**
 * Headers with which some frameworks let a request name another method, such as a POST that the
 * application runs as DELETE. The policy, the scorer and the audit trail see the method of the
 * request line, so such requests are rejected instead of forwarded. Names are compared with `_`
 * read as `-`, because some servers map both to the same variable.
 */
const METHOD_OVERRIDE_HEADERS: ReadonlySet<string> = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);

/**
 * Rejects a method-override header, or a `_method` query parameter, which Rails, Laravel,
 * Symfony and Express's method-override read for the same purpose.
 *
 * @throws {HttpError} `WG_HTTP_METHOD_OVERRIDE` (400).
 */
export function checkMethodOverride(headers: IncomingHttpHeaders, query: string): void {
  const header = Object.keys(headers).find((name) => METHOD_OVERRIDE_HEADERS.has(name.replace(/_/g, '-')));
  if (header !== undefined) {
    throw new HttpError('WG_HTTP_METHOD_OVERRIDE', `Header ${header} is not accepted by Wardgate, because the policy decides on the method of the request line; send the request with the method itself.`);
  }
  const parameter = [...new URLSearchParams(query.replace(/;/g, '&')).keys()].find(namesMethod);
  if (parameter !== undefined) {
    throw new HttpError('WG_HTTP_METHOD_OVERRIDE', `Query parameter ${parameter} is not accepted by Wardgate, because the policy decides on the method of the request line; send the request with the method itself.`);
  }
}

/**
 * Returns whether a query parameter name reads as `_method` to some framework. Letter case does
 * not matter. PHP reads `.`, a space and `[` as `_`, and `_method[]` and `a[_method]` count too.
 */
function namesMethod(name: string): boolean {
  // PHP also drops leading spaces and cuts a name at a NUL byte.
  return [name, name.replace(/^ +/, '').split('\0')[0]!].some((candidate) => {
    const keys = candidate.toLowerCase().split(/[[\]]+/).filter((key) => key !== '');
    return keys.some((key, index) => /^[_. ]method\s*$/.test(key) || (index === 0 && candidate.startsWith('[') && /^method\s*$/.test(key)));
  });
}

/** @throws {HttpError} `WG_HTTP_METHOD_NOT_ALLOWED` (405) for TRACE, TRACK and CONNECT. */
export function checkMethod(method: string | undefined): void {
  const upper = (method ?? '').toUpperCase();
  if (REFUSED_METHODS.has(upper)) {
    throw new HttpError('WG_HTTP_METHOD_NOT_ALLOWED', `Method ${upper} is not accepted by Wardgate; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.`);
  }
}
