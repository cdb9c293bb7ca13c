import type { IncomingMessage } from 'node:http';
import { BreakGlassError } from './errors.ts';

/** Fields a claim or acknowledgement reads; other JSON members are ignored. */
const CLAIM_FIELDS = new Set(['offer', 'csrf', 'reason_code', 'justification', 'choice']);

/** Largest claim body accepted, in bytes; a justification is at most a few thousand characters. */
export const MAX_CLAIM_BYTES = 16 * 1024;

/**
 * Reads a form (`application/x-www-form-urlencoded`) or JSON body into string fields.
 * Repeated form fields, non-string values of the fields a claim reads and other content
 * types are rejected.
 */
export async function readFields(req: IncomingMessage): Promise<{ fields: Record<string, string>; json: boolean }> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded' && type !== 'application/json') {
    throw new BreakGlassError('WG_BREAK_GLASS_INVALID_BODY', `Content-Type ${JSON.stringify(type)} is not accepted; send application/x-www-form-urlencoded or application/json.`);
  }

  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_CLAIM_BYTES) {
      req.resume();
      throw new BreakGlassError('WG_BREAK_GLASS_INVALID_BODY', `The request body is larger than ${MAX_CLAIM_BYTES} bytes; shorten the justification.`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');

  if (type === 'application/json') return { fields: parseJson(text), json: true };
  const fields = newFields();
  for (const [name, value] of new URLSearchParams(text)) {
    if (name in fields) throw new BreakGlassError('WG_BREAK_GLASS_INVALID_BODY', `Form field ${JSON.stringify(name)} appears more than once; send it once.`);
    fields[name] = value;
  }
  return { fields, json: false };
}

function parseJson(text: string): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BreakGlassError('WG_BREAK_GLASS_INVALID_BODY', 'The request body is not valid JSON; send an object such as {"offer":"...","csrf":"...","reason_code":"...","justification":"..."}.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BreakGlassError('WG_BREAK_GLASS_INVALID_BODY', 'The JSON body must be an object with string fields offer, csrf, reason_code and justification.');
  }
  const fields = newFields();
  for (const [name, field] of Object.entries(value)) {
    if (!CLAIM_FIELDS.has(name)) continue;
    if (typeof field !== 'string') throw new BreakGlassError('WG_BREAK_GLASS_INVALID_BODY', `JSON field ${JSON.stringify(name)} must be a string, received ${typeof field}.`);
    fields[name] = field;
  }
  return fields;
}

/**
 * Returns an empty field record without a prototype, so that a field named `toString`,
 * `constructor` or `__proto__` is an ordinary unknown field and not an inherited member.
 */
function newFields(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}
