import { CareSourceError } from './errors.ts';

/** A FHIR resource as read from JSON; only `resourceType` is checked. */
export interface FhirResource {
  readonly resourceType: string;
  readonly id?: unknown;
  readonly [field: string]: unknown;
}

export interface FhirFetchOptions {
  /** Timeout of one HTTP request, body included, in milliseconds. */
  readonly timeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Overall deadline shared by every request of one lookup, every page included. */
  readonly deadline?: FhirDeadline;
}

/** An overall deadline: its signal aborts once `timeoutMs` have passed since {@link startDeadline}. */
export interface FhirDeadline {
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
}

/** Maximum pages of one search that are followed; a longer result is reported as a failure. */
export const MAX_SEARCH_PAGES = 50;
/** Maximum entries of one search over all its pages: 50 pages of the 100 entries that `_count` requests. */
export const MAX_SEARCH_ENTRIES = 5000;

/** Maximum size of one FHIR response body in bytes, counted after content decoding. */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** HTTP statuses that `fetch` would follow as redirects (Fetch standard, "redirect status"). */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Starts an overall deadline of `timeoutMs` milliseconds, to pass as `FhirFetchOptions.deadline`. */
export function startDeadline(timeoutMs: number): FhirDeadline {
  return { signal: AbortSignal.timeout(timeoutMs), timeoutMs };
}

/**
 * Reads one resource. Returns null on 404 (FHIR R4 read: the resource does not exist).
 *
 * @throws {CareSourceError} `WG_CARE_FETCH_FAILED` on a network error, a timeout, a redirect,
 *   another error status or a body that is not the FHIR resource JSON.
 */
export async function fetchResource(url: URL, options: FhirFetchOptions): Promise<FhirResource | null> {
  const { status, body } = await getJson(url, options);
  if (status === 404 || status === 410) return null;
  if (status !== 200) throwFetchFailed(url, `status ${status}`);

  return asResource(body, url);
}

/**
 * Runs a FHIR search and follows `next` links (FHIR R4 section 3.1.1.5.3, paging), returning the
 * resources of every page. Without `options.deadline`, only the timeout of each request bounds
 * the search, so callers pass one to bound all pages together.
 *
 * @throws {CareSourceError} `WG_CARE_FETCH_FAILED` as `fetchResource`, when the deadline passes,
 *   or when the result has more than {@link MAX_SEARCH_PAGES} pages or {@link MAX_SEARCH_ENTRIES} entries.
 */
export async function fetchSearchSet(url: URL, options: FhirFetchOptions): Promise<FhirResource[]> {
  const resources: FhirResource[] = [];
  let next: URL | null = url;

  for (let page = 0; next !== null; page++) {
    if (page >= MAX_SEARCH_PAGES) throwFetchFailed(url, `the search has more than ${MAX_SEARCH_PAGES} pages`);

    const { status, body } = await getJson(next, options);
    if (status !== 200) throwFetchFailed(next, `status ${status}`);

    const bundle = asResource(body, next);
    if (bundle.resourceType !== 'Bundle') throwFetchFailed(next, `expected a Bundle, received ${bundle.resourceType}`);

    const entries = Array.isArray(bundle.entry) ? (bundle.entry as Array<{ resource?: unknown }>) : [];
    // A server that ignores _count could otherwise hand over millions of entries, whose
    // pseudonyms would be computed in one synchronous block that no deadline covers.
    if (resources.length + entries.length > MAX_SEARCH_ENTRIES) {
      throwFetchFailed(url, `the search returned more than ${MAX_SEARCH_ENTRIES} entries`);
    }
    for (const entry of entries) {
      if (isResource(entry?.resource)) resources.push(entry.resource);
    }

    next = nextLink(bundle, next);
  }

  return resources;
}

/**
 * Returns the patient id of a reference to a Patient on the server at `base`, or null for any
 * other reference. Accepted forms (FHIR R4 section 2.3.0, Reference.reference) are the relative
 * `Patient/{id}` and the absolute `{base}Patient/{id}`, each optionally followed by
 * `/_history/{vid}`. An absolute reference to another server is rejected, because its id names a
 * different patient.
 *
 * @param base The FHIR base URL, ending with `/`.
 */
export function patientIdOf(reference: unknown, base: URL): string | null {
  const value = (reference as { reference?: unknown } | null | undefined)?.reference;
  if (typeof value !== 'string') return null;

  let relative = value;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value)) {
    let absolute: URL;
    try {
      absolute = new URL(value);
    } catch {
      return null;
    }
    if (!absolute.href.startsWith(base.href)) return null;
    relative = absolute.href.slice(base.href.length);
  }

  const match = /^Patient\/([^/?#]+)(?:\/_history\/[^/?#]+)?$/.exec(relative);
  return match ? match[1]! : null;
}

async function getJson(url: URL, options: FhirFetchOptions): Promise<{ status: number; body: unknown }> {
  const requestSignal = AbortSignal.timeout(options.timeoutMs);
  const signal = options.deadline ? AbortSignal.any([requestSignal, options.deadline.signal]) : requestSignal;

  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: 'application/fhir+json', ...options.headers },
      signal,
      // Redirects are reported, not followed: a redirect could lead the source to another server.
      redirect: 'manual',
    });
  } catch (error) {
    throwFetchFailed(url, failureReason(error, options), error);
  }

  if (REDIRECT_STATUSES.has(response.status)) {
    await response.body?.cancel();
    throwFetchFailed(url, redirectReason(response, url));
  }

  if (response.status !== 200) {
    await response.body?.cancel();
    return { status: response.status, body: null };
  }

  const length = Number(response.headers.get('content-length') ?? 0);
  if (length > MAX_RESPONSE_BYTES) {
    await response.body?.cancel();
    throwFetchFailed(url, `the response has ${length} bytes, above the limit of ${MAX_RESPONSE_BYTES}`);
  }

  const text = await readBody(response, url, options);

  try {
    return { status: 200, body: JSON.parse(text) };
  } catch (error) {
    throwFetchFailed(url, 'the response is not JSON', error);
  }
}

/**
 * Reads the body as a stream and stops at {@link MAX_RESPONSE_BYTES}, because a chunked response
 * has no content-length to check in advance.
 */
async function readBody(response: Response, url: URL, options: FhirFetchOptions): Promise<string> {
  if (response.body === null) return '';

  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    for await (const chunk of response.body) {
      bytes += chunk.byteLength;
      if (bytes > MAX_RESPONSE_BYTES) break;
      chunks.push(chunk);
    }
  } catch (error) {
    throwFetchFailed(url, `the response body could not be read (${failureReason(error, options)})`, error);
  }

  // Leaving the loop with break cancels the stream, which closes the connection.
  if (bytes > MAX_RESPONSE_BYTES) throwFetchFailed(url, `the response body is larger than the limit of ${MAX_RESPONSE_BYTES} bytes`);

  return Buffer.concat(chunks, bytes).toString('utf8');
}

function failureReason(error: unknown, options: FhirFetchOptions): string {
  if (options.deadline?.signal.aborted) return `timed out: the lookup took longer than its overall deadline of ${options.deadline.timeoutMs} ms`;
  if ((error as Error).name === 'TimeoutError') return `timed out after ${options.timeoutMs} ms`;

  return (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
}

function redirectReason(response: Response, url: URL): string {
  const location = response.headers.get('location');
  let target = 'no location';
  if (location !== null) {
    try {
      // Only the origin, because the path of a redirect can carry a patient id.
      target = `location on ${new URL(location, url).origin}`;
    } catch {
      target = 'an invalid location';
    }
  }

  return `the server responded with a redirect (status ${response.status}, ${target}), which is not followed. Set the FHIR base URL to the address the server redirects to`;
}

function asResource(body: unknown, url: URL): FhirResource {
  if (!isResource(body)) throwFetchFailed(url, 'the response is not a FHIR resource (no resourceType)');

  return body;
}

function isResource(value: unknown): value is FhirResource {
  return value !== null && typeof value === 'object' && typeof (value as { resourceType?: unknown }).resourceType === 'string';
}

function nextLink(bundle: FhirResource, current: URL): URL | null {
  const links = Array.isArray(bundle.link) ? (bundle.link as Array<{ relation?: unknown; url?: unknown }>) : [];
  const next = links.find((link) => link?.relation === 'next' && typeof link.url === 'string');
  if (!next) return null;

  const url = new URL(next.url as string, current);
  // A next link must stay on the server that was asked, so a Bundle cannot send the source elsewhere.
  if (url.origin !== current.origin) throwFetchFailed(current, `the next link points to another origin (${url.origin})`);

  return url;
}

function throwFetchFailed(url: URL, reason: string, cause?: unknown): never {
  throw new CareSourceError('WG_CARE_FETCH_FAILED', `FHIR request ${url.pathname} failed: ${reason}.`, { cause });
}
