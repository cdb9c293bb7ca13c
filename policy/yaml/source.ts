import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { LineCounter, parseDocument, type Document } from 'yaml';

import type { PolicyIssue, PolicyIssueCode } from '../errors.ts';

/** Default maximum size of a policy or policy test file, in bytes. */
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;

/**
 * Maximum nesting of YAML flow collections (`[` and `{`). No policy needs more than a
 * handful of levels; the limit rejects nesting bombs before the YAML parser spends
 * seconds on them.
 */
const MAX_FLOW_DEPTH = 64;

/** A YAML file decoded and parsed, ready for structural validation. */
export interface YamlSource {
  readonly file: string;
  readonly text: string;
  readonly document: Document.Parsed;
  readonly lineCounter: LineCounter;
  /** SHA-256 of the file bytes, lowercase hex. */
  readonly sha256: string;
}

/**
 * Decodes and parses one YAML file. Returns the parsed source, or `undefined` after adding
 * the problems to `issues` when the bytes are too many, not UTF-8, or not one valid YAML
 * document.
 */
export function parseYamlSource(
  source: string | Uint8Array,
  file: string,
  maxBytes: number,
  issues: PolicyIssue[],
): YamlSource | undefined {
  const bytes = typeof source === 'string' ? Buffer.from(source, 'utf8') : source;
  const issue = (code: PolicyIssueCode, line: number, column: number, expected: string, got: string): undefined => {
    issues.push({ code, file, line, column, expected, got });
    return undefined;
  };

  if (bytes.byteLength > maxBytes) {
    return issue('WG_POLICY_FILE_TOO_LARGE', 1, 1, `a file of at most ${maxBytes} bytes`, `${bytes.byteLength} bytes`);
  }

  const badByte = firstInvalidUtf8Byte(bytes);
  if (badByte !== -1) {
    const prefix = Buffer.from(bytes.buffer, bytes.byteOffset, badByte).toString('utf8');
    const position = positionInText(prefix, prefix.length);
    return issue('WG_POLICY_INVALID_ENCODING', position.line, position.column, 'UTF-8 text', `byte 0x${bytes[badByte]!.toString(16).padStart(2, '0')} at byte offset ${badByte}`);
  }

  const text = new TextDecoder('utf-8').decode(bytes);
  const lineCounter = new LineCounter();

  const deepOffset = firstOffsetDeeperThan(text, MAX_FLOW_DEPTH);
  if (deepOffset !== -1) {
    const position = positionInText(text, deepOffset);
    return issue('WG_POLICY_YAML_SYNTAX', position.line, position.column, `flow collections nested at most ${MAX_FLOW_DEPTH} levels deep`, 'deeper nesting');
  }

  const document = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    strict: true,
    keepSourceTokens: false,
  });
  const problems = [...document.errors, ...document.warnings];
  for (const problem of problems) {
    const { line, col } = lineCounter.linePos(problem.pos[0]);
    const code: PolicyIssueCode = problem.code === 'DUPLICATE_KEY' ? 'WG_POLICY_DUPLICATE_KEY' : 'WG_POLICY_YAML_SYNTAX';
    const expected = problem.code === 'DUPLICATE_KEY' ? 'each key at most once in a mapping' : 'valid YAML';
    issues.push({ code, file, line, column: col, expected, got: `${problem.message.split('\n')[0]} (${problem.code})` });
  }
  if (problems.length > 0) return undefined;

  const sha256 = createHash('sha256').update(bytes).digest('hex');

  return { file, text, document, lineCounter, sha256 };
}

/** Returns the line and column (both from 1) of a character offset in `text`. */
export function positionInText(text: string, offset: number, lineCounter?: LineCounter): { line: number; column: number } {
  if (lineCounter !== undefined && lineCounter.lineStarts.length > 1) {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  }

  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }

  return { line, column: offset - lineStart + 1 };
}

/** Returns the offset of the first byte that breaks UTF-8 (RFC 3629), or -1 when all bytes are valid. */
function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  if (isUtf8(bytes)) return -1;

  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    let length: number;
    let min: number;
    if (lead < 0x80) {
      i++;
      continue;
    } else if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
      min = 0x80;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      min = 0x800;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      min = 0x10000;
    } else {
      return i;
    }

    let codePoint = lead & (0x7f >> length);
    for (let k = 1; k < length; k++) {
      const next = bytes[i + k];
      if (next === undefined || (next & 0xc0) !== 0x80) return i;
      codePoint = (codePoint << 6) | (next & 0x3f);
    }
    if (codePoint < min || codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) return i;
    i += length;
  }

  return -1;
}

/**
 * Returns the offset of the first `[` or `{` nested deeper than `maxDepth`, or -1.
 * Quoted scalars and comments are skipped. The scan is approximate (a quote inside a plain
 * scalar hides the brackets after it), so it can only under-count, never reject a file
 * whose real nesting is within the limit.
 */
function firstOffsetDeeperThan(text: string, maxDepth: number): number {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quote !== '') {
      if (char === '\\' && quote === '"') i++;
      else if (char === quote) quote = '';
      continue;
    }

    if (char === '"' || char === "'") {
      quote = char;
    } else if (char === '#' && (i === 0 || text[i - 1] === ' ' || text[i - 1] === '\t' || text[i - 1] === '\n')) {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end;
    } else if (char === '[' || char === '{') {
      depth++;
      if (depth > maxDepth) return i;
    } else if ((char === ']' || char === '}') && depth > 0) {
      depth--;
    }
  }

  return -1;
}
