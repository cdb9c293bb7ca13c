import { createHash } from 'node:crypto';

/** The `prev` of the very first record of an instance's trail. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Serialises a JSON value canonically: object keys sorted by UTF-16 code units, no
 * whitespace, `undefined` members left out, non-finite numbers as `null` (the rules of
 * JSON.stringify otherwise). A record's hash is SHA-256 over this text, so a verifier
 * that re-parses a line gets the same hash whatever whitespace or key order a shipper
 * introduced.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null) ?? 'null';

  const json = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof json === 'function') return canonicalJson(json.call(value));

  // Every record is serialised on the request path, so the text is built by concatenation
  // without intermediate arrays. A hole in a sparse array is written as null, like undefined.
  if (Array.isArray(value)) {
    let text = '[';
    for (let index = 0; index < value.length; index++) {
      const item: unknown = value[index];
      if (index > 0) text += ',';
      text += item === undefined || typeof item === 'function' ? 'null' : canonicalJson(item);
    }
    return `${text}]`;
  }

  let text = '{';
  for (const key of Object.keys(value).sort()) {
    const member = (value as Record<string, unknown>)[key];
    if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
    if (text.length > 1) text += ',';
    text += `${JSON.stringify(key)}:${canonicalJson(member)}`;
  }
  return `${text}}`;
}

/** Returns the lowercase hex SHA-256 of a UTF-8 string. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Returns the hash that the next record stores as `prev`: SHA-256 over the canonical form. */
export function recordHash(record: unknown): string {
  return sha256Hex(canonicalJson(record));
}
