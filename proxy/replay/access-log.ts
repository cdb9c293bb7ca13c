import { createReadStream } from 'node:fs';
import { dateTimeRangeProblem } from '../../scorer/date-time.ts';

/** One request of a recorded access log, checked and converted. */
export interface AccessRecord {
  /** Line number in the file, from 1. */
  readonly line: number;
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly user: string;
  readonly groups: readonly string[];
  readonly ip: string;
  readonly userAgent: string;
  readonly method: string;
  /** Lowercase host name without a port. */
  readonly host: string;
  /** Request target as recorded: path and query, not yet normalized. */
  readonly target: string;
  readonly status: number;
  readonly bytes: number;
  readonly label?: 'benign' | 'misuse';
  readonly episode?: string;
  /** TLS key exchange group of the recorded connection; replay assumes X25519MLKEM768 without it. */
  readonly tlsGroup?: string;
}

/** A line that cannot be replayed, with the field that is wrong. */
/** `AccessRecordError.field` of a problem with the whole line. */
export const WHOLE_LINE = '(line)';

export class AccessRecordError extends Error {
  readonly code = 'WG_REPLAY_INVALID_RECORD';
  readonly line: number;
  readonly field: string;

  constructor(line: number, field: string, message: string) {
    // A problem with the whole line, such as invalid JSON, names no field.
    super(field === WHOLE_LINE ? `line ${line}: ${message}` : `line ${line}: field "${field}": ${message}`);
    this.name = 'AccessRecordError';
    this.line = line;
    this.field = field;
  }
}

/**
 * Maximum length of one line in UTF-8 bytes, without the line break. Longer lines are
 * rejected as invalid, and `readAccessLog` drops them while reading, so memory stays bounded.
 */
export const MAX_LINE_BYTES = 64 * 1024;

/** ISO 8601 date-time with a time zone (`Z` or `±hh:mm`), as RFC 3339 profiles it. */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2}))$/;
/** HTTP method token (RFC 9110 section 9.1). */
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;

/**
 * Parses one JSON Lines record. Fields other than the documented ones are ignored.
 *
 * @throws {AccessRecordError} naming the line and the first invalid field.
 */
export function parseAccessRecord(text: string, line: number): AccessRecord {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_LINE_BYTES) throw lineTooLong(line, bytes);

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // The parser quotes part of the line, which may hold terminal escape sequences.
    const reason = (error as Error).message.replace(/[\p{Cc}\u2028\u2029]/gu, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
    throw new AccessRecordError(line, WHOLE_LINE, `invalid JSON (${reason}); each line must be one JSON object`);
  }

  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AccessRecordError(line, WHOLE_LINE, `expected a JSON object, received ${describe(value)}`);
  }

  const fields = value as Record<string, unknown>;
  const time = readTime(fields, line);
  const host = readString(fields, 'host', line).toLowerCase().replace(/:\d+$/, '');
  const target = readString(fields, 'path', line);
  if (!target.startsWith('/')) {
    throw new AccessRecordError(line, 'path', `expected a path starting with "/", received ${JSON.stringify(target.slice(0, 80))}`);
  }

  const method = readString(fields, 'method', line).toUpperCase();
  if (!METHOD.test(method)) {
    throw new AccessRecordError(line, 'method', `expected an HTTP method such as "GET", received ${JSON.stringify(method.slice(0, 40))}`);
  }

  const record: AccessRecord = {
    line,
    time,
    user: readString(fields, 'user', line),
    groups: readGroups(fields, line),
    ip: readString(fields, 'ip', line),
    userAgent: readString(fields, 'user_agent', line, true),
    method,
    host,
    target,
    status: readInteger(fields, 'status', line, 100, 599),
    bytes: readInteger(fields, 'bytes', line, 0, Number.MAX_SAFE_INTEGER),
    ...readLabel(fields, line),
    ...readOptionalString(fields, 'episode', 'episode', line),
    ...readOptionalString(fields, 'tls_group', 'tlsGroup', line),
  };

  return record;
}

/** Result of reading an access log: the valid records in file order and the rejected lines. */
export interface AccessLog {
  readonly records: AccessRecord[];
  readonly errors: AccessRecordError[];
  /** The line at which reading stopped because more than `maxErrors` lines were invalid, else null. */
  readonly stoppedAtLine: number | null;
}

/**
 * Reads a JSON Lines access log. Blank lines are skipped; invalid lines, including lines of
 * more than `MAX_LINE_BYTES`, are collected in `errors`. Reading stops once more than
 * `maxErrors` lines are invalid, so a file that is not an access log at all cannot fill memory
 * with errors.
 *
 * @throws the file system error when the file cannot be read.
 */
export async function readAccessLog(file: string, maxErrors = Number.POSITIVE_INFINITY): Promise<AccessLog> {
  const records: AccessRecord[] = [];
  const errors: AccessRecordError[] = [];
  let number = 0;
  const stream = createReadStream(file, { highWaterMark: 256 * 1024 });

  try {
    for await (const line of splitLines(stream, MAX_LINE_BYTES)) {
      number++;
      if (typeof line === 'number') {
        errors.push(lineTooLong(number, line));
      } else if (line === NOT_UTF8) {
        errors.push(new AccessRecordError(number, WHOLE_LINE, 'the line is not valid UTF-8; save the access log as UTF-8'));
      } else if (line.trim() !== '') {
        try {
          records.push(parseAccessRecord(line, number));
        } catch (error) {
          if (!(error instanceof AccessRecordError)) throw error;
          errors.push(error);
        }
      }
      if (errors.length > maxErrors) return { records, errors, stoppedAtLine: number };
    }
  } finally {
    stream.destroy();
  }

  return { records, errors, stoppedAtLine: null };
}

/** Yielded by `splitLines` in place of a line that is not valid UTF-8. */
const NOT_UTF8: unique symbol = Symbol('not UTF-8');

/**
 * Splits a byte stream at LF and yields each line as text without its LF or CRLF, and without
 * a byte order mark at its start. A line of more than `maxBytes` is not kept: its length in
 * bytes is yielded instead, and {@link NOT_UTF8} replaces a line that is not valid UTF-8.
 * node:readline would hold the whole line in memory and throw a RangeError beyond V8's maximum
 * string length (2^29 - 24 characters on 64-bit builds).
 */
async function* splitLines(input: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<string | number | typeof NOT_UTF8> {
  let parts: Buffer[] = [];
  let length = 0;
  // A fatal decoder rejects invalid bytes instead of turning them into U+FFFD, and it drops a BOM.
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const finish = (): string | number | typeof NOT_UTF8 => {
    let line: string | number | typeof NOT_UTF8 = length;
    if (length <= maxBytes) {
      try {
        line = decoder.decode(Buffer.concat(parts)).replace(/\r$/, '');
      } catch {
        line = NOT_UTF8;
      }
    }
    parts = [];
    length = 0;
    return line;
  };

  for await (const chunk of input) {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      length += end - start;
      if (length <= maxBytes) parts.push(chunk.subarray(start, end));
      else parts = [];
      if (newline === -1) break;

      yield finish();
      start = newline + 1;
    }
  }
  if (length > 0) yield finish();
}

/** Sorts records by time; records with the same time keep their file order. */
export function inTimeOrder(records: readonly AccessRecord[]): AccessRecord[] {
  return [...records].sort((a, b) => a.time - b.time || a.line - b.line);
}

function readTime(fields: Record<string, unknown>, line: number): number {
  const value = fields.time;
  const expected = 'an ISO 8601 time with a zone such as "2025-03-03T09:00:00Z"';
  const match = typeof value === 'string' ? ISO_TIME.exec(value) : null;
  if (match === null) throw new AccessRecordError(line, 'time', `expected ${expected}, received ${describe(value)}`);

  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = match.slice(1, 9).map((field) => Number(field ?? 0)) as [number, number, number, number, number, number, number, number];
  const problem = dateTimeRangeProblem({ year, month, day, hour, minute, second, offsetHours, offsetMinutes });
  if (problem !== null) throw new AccessRecordError(line, 'time', `${describe(value)} is not a valid time (${problem}); expected ${expected}`);
  const time = Date.parse(match[0]);
  if (time < 0) throw new AccessRecordError(line, 'time', `${describe(value)} is before 1970-01-01T00:00:00Z; expected ${expected}`);

  return time;
}

function lineTooLong(line: number, bytes: number): AccessRecordError {
  return new AccessRecordError(line, WHOLE_LINE, `expected at most ${MAX_LINE_BYTES} bytes, received ${bytes} bytes`);
}

function readString(fields: Record<string, unknown>, name: string, line: number, allowEmpty = false): string {
  const value = fields[name];
  if (typeof value !== 'string' || (!allowEmpty && value === '')) {
    throw new AccessRecordError(line, name, `expected a ${allowEmpty ? '' : 'non-empty '}string, received ${describe(value)}`);
  }

  return value;
}

function readGroups(fields: Record<string, unknown>, line: number): string[] {
  const value = fields.groups;
  if (!Array.isArray(value) || value.some((group) => typeof group !== 'string')) {
    throw new AccessRecordError(line, 'groups', `expected an array of strings such as ["physicians"], received ${describe(value)}`);
  }

  return value as string[];
}

function readInteger(fields: Record<string, unknown>, name: string, line: number, min: number, max: number): number {
  const value = fields[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new AccessRecordError(line, name, `expected an integer from ${min} to ${max}, received ${describe(value)}`);
  }

  return value;
}

function readLabel(fields: Record<string, unknown>, line: number): { label?: 'benign' | 'misuse' } {
  const value = fields.label;
  if (value === undefined || value === null) return {};
  if (value !== 'benign' && value !== 'misuse') {
    throw new AccessRecordError(line, 'label', `expected "benign" or "misuse", received ${describe(value)}`);
  }

  return { label: value };
}

function readOptionalString<K extends string>(fields: Record<string, unknown>, name: string, key: K, line: number): Partial<Record<K, string>> {
  const value = fields[name];
  if (value === undefined || value === null) return {};
  if (typeof value !== 'string' || value === '') {
    throw new AccessRecordError(line, name, `expected a non-empty string when present, received ${describe(value)}`);
  }

  return { [key]: value } as Partial<Record<K, string>>;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' && !Number.isFinite(value)) return 'a number too large to represent';
  const text = JSON.stringify(value);

  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
