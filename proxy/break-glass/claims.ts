import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { escapeHtml, wantsHtml } from '../enforce/responses.ts';
import type { Principal } from '../identity/principal.ts';
import type { AuthResult } from '../ports.ts';
import { StateError } from '../state/errors.ts';
import { readFields } from './body.ts';
import { BreakGlassError } from './errors.ts';
import type { Oversight } from './oversight.ts';
import { BREAK_GLASS_PATH, sendBreakGlassPage } from './pages.ts';
import { csrfMatches, sha256, type OfferRecord } from './store.ts';

export interface RouteInput {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly path: string;
  readonly auth: AuthResult;
  readonly incidentId: string;
  readonly log: Logger;
  readonly now: number;
}

/**
 * Characters a justification may not contain: controls other than tab and line breaks, C1
 * controls, bidirectional overrides and isolates, the Unicode line and paragraph separators,
 * and U+FFFD. Direction marks reorder what an analyst reads, and U+FFFD replaces bytes that
 * were not UTF-8.
 */
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufffd]/u;

/**
 * Characters that show nothing, so a justification made of them looks blank or hides text.
 * These are format characters (Cf, such as zero-width spaces, soft hyphens, U+061C and tag
 * characters), private-use (Co), unassigned (Cn) and surrogate (Cs) code points. The
 * letters and symbols that render as blanks (U+2800, U+3164, U+115F, U+1160, U+FFA0) count too.
 * So do marks that show nothing: the combining grapheme joiner U+034F, the Khmer inherent
 * vowels U+17B4 and U+17B5, and the musical null notehead U+1D159. U+200C and U+200D
 * (zero-width non-joiner and joiner) and the Mongolian vowel separator U+180E are allowed:
 * scripts such as Persian, several Indic scripts and Mongolian use them inside words, and they
 * do not count towards the minimum length.
 */
const INVISIBLE_CHARACTERS = /(?![\u200c\u200d\u180e])[\p{Cf}\p{Co}\p{Cn}\p{Cs}\u2800\u3164\u115f\u1160\uffa0\u034f\u17b4\u17b5\u{1d159}]/u;

/**
 * Two or more variation selectors in a row. One selector picks a glyph of the character
 * before it (an emoji style, a Mongolian form, an ideographic variant). A run of them shows
 * nothing and can encode hidden text, a few bits per selector.
 */
const VARIATION_SELECTOR_RUN = /[\ufe00-\ufe0f\u180b-\u180d\u180f\u{e0100}-\u{e01ef}]{2,}/u;

/** Characters that count towards `justification_min_length`: letters, digits, punctuation and symbols. */
const VISIBLE_CHARACTERS = /[\p{L}\p{N}\p{P}\p{S}]/gu;

/**
 * Serves a POSTed break-glass claim or notice acknowledgement. Every rejection is a coded
 * 400, 403 or 405 and grants nothing; a store failure is a 503.
 */
export async function handleOversightRoute(oversight: Oversight, input: RouteInput): Promise<void> {
  const { req, res } = input;
  try {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      throw new BreakGlassError('WG_BREAK_GLASS_METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed on ${input.path}; submit the form on the page Wardgate showed.`);
    }
    const principal = input.auth.kind === 'authenticated' ? input.auth.principal : null;
    if (!principal) {
      throw new BreakGlassError('WG_BREAK_GLASS_NO_SESSION', `${input.path} needs a signed-in session or a bearer token; sign in and open the page again.`);
    }
    const { fields, json } = await readFields(req);
    const offer = await verifyOffer(oversight, principal, fields, input.path === BREAK_GLASS_PATH ? 'break_glass' : 'notice');

    if (offer.kind === 'notice') {
      await acknowledgeNotice(oversight, input, offer.record, fields.offer!);
    } else if (fields.choice === 'step_up' && offer.record.step_up) {
      await oversight.options.identity.sendStepUp(req, res, offer.record.step_up, offer.record.return_to);
    } else {
      await claimBreakGlass(oversight, input, principal, offer.record, fields, json);
    }
  } catch (error) {
    sendRouteError(input, error);
  }
}

async function verifyOffer(oversight: Oversight, principal: Principal, fields: Record<string, string>, kind: OfferRecord['kind']): Promise<{ kind: OfferRecord['kind']; record: OfferRecord }> {
  const record = await oversight.store.loadOffer(fields.offer ?? '');
  if (!record || record.kind !== kind) {
    throw new BreakGlassError(kind === 'notice' ? 'WG_NOTICE_UNKNOWN' : 'WG_BREAK_GLASS_OFFER_UNKNOWN', `Field "offer" does not name an open ${kind === 'notice' ? 'notice' : 'break-glass offer'}; it may have expired or been used. Open the page you wanted again.`);
  }
  const sameSession = principal.sessionId === undefined ? record.session === undefined : record.session === sha256(principal.sessionId);
  if (record.subject !== principal.subject || !sameSession) {
    throw new BreakGlassError('WG_BREAK_GLASS_CSRF_REJECTED', 'This form was issued to another session; open the page you wanted again from this browser.');
  }
  if (!csrfMatches(fields.csrf ?? '', record.csrf)) {
    throw new BreakGlassError('WG_BREAK_GLASS_CSRF_REJECTED', 'Field "csrf" is missing or does not match this form; submit the form Wardgate showed without changing it.');
  }
  return { kind: record.kind, record };
}

async function claimBreakGlass(oversight: Oversight, input: RouteInput, principal: Principal, offer: OfferRecord, fields: Record<string, string>, json: boolean): Promise<void> {
  const limits = oversight.options.config.break_glass;
  const reasonCodes = offer.reason_codes ?? [];
  const reasonCode = fields.reason_code ?? '';
  const justification = (fields.justification ?? '').trim();

  const problem = checkClaim(reasonCodes, reasonCode, justification, limits);
  if (problem && !json) {
    // The browser gets the form back with the message, keeping what the user wrote.
    sendBreakGlassPage(input.res, { offer: fields.offer!, csrf: fields.csrf!, reasonCodes, ttlSeconds: offer.ttl ?? 0, minLength: limits.justification_min_length, maxLength: limits.justification_max_length, incidentId: input.incidentId, stepUp: offer.step_up !== undefined, error: problem.message, justification: fields.justification ?? '', reasonCode });
    return;
  }
  if (problem) throw problem;
  if (!(await oversight.store.consumeOffer(fields.offer!))) {
    throw new BreakGlassError('WG_BREAK_GLASS_OFFER_UNKNOWN', 'This break-glass offer was already used; open the page you wanted again.');
  }

  const ttlMs = (offer.ttl ?? 0) * 1000;
  const expiresAt = input.now + ttlMs;
  await oversight.store.saveGrant({ subject: principal.subject, route: offer.route, reason_code: reasonCode, trace_id: input.incidentId, expires_at: expiresAt }, ttlMs);

  const event = { user: principal.subject, groups: offer.groups, route: offer.route, method: offer.method, path: offer.path, patients: offer.patients ?? [], rule: offer.rule, reasons: offer.reasons, risk: offer.risk };
  const claim = { reason_code: reasonCode, justification, ttl: offer.ttl ?? 0, expires_at: expiresAt };
  oversight.options.audit?.append({ kind: 'break_glass', event: 'claim', trace_id: input.incidentId, offer_trace_id: offer.trace_id, time: input.now, ...event, ...claim });
  oversight.options.review?.enqueue({ kind: 'break_glass', time: input.now, trace_id: input.incidentId, ...event, action: 'break_glass', top_features: offer.top, ...(offer.model_version ? { model_version: offer.model_version } : {}), break_glass: claim });
  input.log.warn({ user: principal.subject, route: offer.route, reason_code: reasonCode, expires_at: expiresAt }, 'break-glass emergency access granted');

  if (json) {
    sendJson(input.res, 200, { granted: true, route: offer.route, reason_code: reasonCode, expires_at: new Date(expiresAt).toISOString(), return_to: offer.return_to });
    return;
  }
  input.res.writeHead(303, { location: offer.return_to, 'cache-control': 'no-store' });
  input.res.end();
}

/** Returns what is wrong with a claim's reason code or justification, or null when both are valid. */
function checkClaim(reasonCodes: readonly string[], reasonCode: string, justification: string, limits: { justification_min_length: number; justification_max_length: number }): BreakGlassError | null {
  if (!reasonCodes.includes(reasonCode)) {
    return new BreakGlassError('WG_BREAK_GLASS_INVALID_REASON', `Reason code ${JSON.stringify(reasonCode.slice(0, 60))} is not accepted here; choose one of ${reasonCodes.join(', ')}.`);
  }
  return checkJustification(justification, limits);
}

/**
 * Returns what is wrong with a justification, or null when it is valid. The messages name a
 * rejected character by its code point, because the reader could not see it if it were quoted.
 */
function checkJustification(justification: string, limits: { justification_min_length: number; justification_max_length: number }): BreakGlassError | null {
  const invalid = (message: string) => new BreakGlassError('WG_BREAK_GLASS_INVALID_JUSTIFICATION', message);

  // A JSON string can carry an unpaired surrogate (\ud800), which is not a character.
  if (!justification.isWellFormed()) {
    const { codePoint, position } = findCharacter(justification, /\p{Cs}/u)!;
    return invalid(`The justification is not well-formed Unicode: it contains the unpaired surrogate ${codePoint} (at character ${position}). Send the text as UTF-8, or escape only complete surrogate pairs in JSON.`);
  }

  const hidden = findCharacter(justification, CONTROL_CHARACTERS) ?? findCharacter(justification, INVISIBLE_CHARACTERS) ?? findCharacter(justification, VARIATION_SELECTOR_RUN);
  if (hidden) {
    return invalid(`The justification contains the invisible or control character ${hidden.codePoint} (at character ${hidden.position}); retype the justification as plain text instead of pasting it.`);
  }

  const range = `write ${limits.justification_min_length} to ${limits.justification_max_length} characters saying why this patient needs this access now`;
  // Spaces and combining marks show no text of their own, so only visible characters count
  // towards the minimum. NFC first joins a letter and its accents into one character where it can.
  const visible = justification.normalize('NFC').match(VISIBLE_CHARACTERS)?.length ?? 0;
  if (visible < limits.justification_min_length) {
    return invalid(`The justification has ${visible} visible ${visible === 1 ? 'character' : 'characters'}; ${range}. Spaces and combining marks do not count towards the minimum.`);
  }

  const length = [...justification].length;
  if (length > limits.justification_max_length) {
    return invalid(`The justification has ${length} characters; ${range}.`);
  }
  return null;
}

/** Returns the first code point that `pattern` matches, as `U+XXXX`, and its 1-based position in code points. */
function findCharacter(text: string, pattern: RegExp): { codePoint: string; position: number } | null {
  const match = pattern.exec(text);
  if (!match) return null;

  const codePoint = `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  return { codePoint, position: [...text.slice(0, match.index)].length + 1 };
}

async function acknowledgeNotice(oversight: Oversight, input: RouteInput, offer: OfferRecord, offerId: string): Promise<void> {
  if (!offer.notice_key || !(await oversight.store.consumeOffer(offerId))) {
    throw new BreakGlassError('WG_NOTICE_UNKNOWN', 'This notice was already acknowledged; open the page you wanted again.');
  }
  await oversight.store.acknowledge(offer.notice_key, oversight.options.config.notify.acknowledgement_ttl * 1000, input.now);
  oversight.options.audit?.append({ kind: 'notice_ack', trace_id: input.incidentId, offer_trace_id: offer.trace_id, time: input.now, user: offer.subject, route: offer.route, method: offer.method, path: offer.path, patients: offer.patients ?? [], rule: offer.rule });
  input.res.writeHead(303, { location: offer.return_to, 'cache-control': 'no-store' });
  input.res.end();
}

function sendRouteError(input: RouteInput, error: unknown): void {
  const { req, res } = input;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  let status: number;
  let code: string;
  let message: string;
  if (error instanceof BreakGlassError) {
    ({ status, code, message } = error);
  } else if (error instanceof StateError) {
    input.log.error({ err: error }, 'break-glass or notice state is unavailable');
    [status, code, message] = [503, 'WG_DEPENDENCY_UNAVAILABLE', 'Emergency access state is temporarily unavailable. Try again in a minute, or call the IT service desk.'];
  } else {
    throw error;
  }
  res.setHeader('x-wardgate-error', code);
  if (wantsHtml(req)) {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-wardgate-incident': input.incidentId, 'content-security-policy': "default-src 'none'" });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Request rejected</title></head><body><h1>Request rejected</h1><p>${escapeHtml(message)}</p><p>Error code: ${code}. Incident id: <code>${input.incidentId}</code></p></body></html>\n`);
    return;
  }
  sendJson(res, status, { error: code, message, incident_id: input.incidentId });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
