import { CareSourceError } from './errors.ts';

/** A FHIR resource as read from JSON; only `resourceType` is checked. */
export interface FhirResource {
  readonly resourceType: string;
  readonly id?: unknown;
  readonly [field: string]: unknown;
}

export interface FhirFetchOptions {
  readonly timeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** Maximum pages of one search that are followed; a longer result is reported as a failure. */
export const MAX_SEARCH_PAGES = 50;

/** Maximum size of one FHIR response body in bytes. */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/**
 * Reads one resource. Returns null on 404 (FHIR R4 read: the resource does not exist).
 *
 * @throws {CareSourceError} `WG_CARE_FETCH_FAILED` on a network error, a timeout, another error
 *   status or a body that is not the FHIR resource JSON.
 */
export async function fetchResource(url: URL, options: FhirFetchOptions): Promise<FhirResource | null> {
  const { status, body } = await getJson(url, options);
  if (status === 404 || status === 410) return null;
  if (status !== 200) throwFetchFailed(url, `status ${status}`);

  return asResource(body, url);
}

/**
 * Runs a FHIR search and follows `next` links (FHIR R4 section 3.1.1.5.3, paging), returning the
 * resources of every page.
 *
 * @throws {CareSourceError} `WG_CARE_FETCH_FAILED` as `fetchResource`, or when the result has more
 *   than {@link MAX_SEARCH_PAGES} pages.
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
    for (const entry of entries) {
      if (isResource(entry?.resource)) resources.push(entry.resource);
    }

    next = nextLink(bundle, next);
  }

  return resources;
}

/** Returns the patient id of a `Patient/{id}` reference, or null for any other reference. */
export function patientIdOf(reference: unknown): string | null {
  const value = (reference as { reference?: unknown } | null | undefined)?.reference;
  if (typeof value !== 'string') return null;

  const match = /(?:^|\/)Patient\/([^/?#]+)$/.exec(value);
  return match ? match[1]! : null;
}

async function getJson(url: URL, options: FhirFetchOptions): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: 'application/fhir+json', ...options.headers },
      signal: AbortSignal.timeout(options.timeoutMs),
      redirect: 'error',
    });
  } catch (error) {
    const reason = (error as Error).name === 'TimeoutError' ? `timed out after ${options.timeoutMs} ms` : ((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message);
    throwFetchFailed(url, reason, error);
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

  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throwFetchFailed(url, `the response body could not be read (${(error as Error).message})`, error);
  }
  if (text.length > MAX_RESPONSE_BYTES) throwFetchFailed(url, `the response is longer than ${MAX_RESPONSE_BYTES} characters`);

  try {
    return { status: 200, body: JSON.parse(text) };
  } catch (error) {
    throwFetchFailed(url, 'the response is not JSON', error);
  }
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
