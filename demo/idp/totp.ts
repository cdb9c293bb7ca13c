import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const STEP_S = 30;
const DIGITS = 6;

/** Generates a TOTP secret of 160 random bits (the RFC 4226 recommendation), base32-encoded for authenticator apps. */
export function generateTotpSecret(): string {
  return base32Encode(randomBytes(20));
}

/**
 * Computes the 6-digit TOTP code (RFC 6238, HMAC-SHA-1, 30-second steps) of a base32
 * secret at `timeMs` milliseconds since the epoch.
 */
export function totp(secret: string, timeMs: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(timeMs / 1000 / STEP_S)));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();

  // RFC 4226 section 5.3: dynamic truncation.
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** DIGITS).padStart(DIGITS, '0');
}

/** Checks a code against the current step and one step either side, to allow for clock drift. */
export function verifyTotp(secret: string, code: string, timeMs: number): boolean {
  if (!/^\d{6}$/.test(code)) {
    return false;
  }

  let matched = false;
  for (const drift of [-1, 0, 1]) {
    const expected = Buffer.from(totp(secret, timeMs + drift * STEP_S * 1000));
    matched = timingSafeEqual(expected, Buffer.from(code)) || matched;
  }
  return matched;
}

function base32Encode(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let output = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      output += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) {
    output += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  }

  return output;
}

function base32Decode(text: string): Buffer {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text.replace(/=+$/, '').toUpperCase()) {
    const index = BASE32_ALPHABET.indexOf(char);
    if (index === -1) {
      throw new TypeError(`TOTP secret must be base32 (A-Z, 2-7), received the character ${JSON.stringify(char)}.`);
    }
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }

  return Buffer.from(bytes);
}
