import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import { attachReplayBody } from '../forward/replay-body.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';
import { IdentityError } from './errors.ts';
import { LOGIN_ATTEMPT_TTL_MS } from './login-attempts.ts';

/** Path that replays a request kept across a step-up: `/.wardgate/replay?id=<id>`. */
export const REPLAY_PATH = '/.wardgate/replay';
/** Default limit on a kept request body: 64 KiB. */
export const DEFAULT_MAX_SAVED_BODY_BYTES = 64 * 1024;
/** Upper bound of the configurable limit, because the body is held in memory and in the store. */
export const MAX_SAVED_BODY_LIMIT_BYTES = 1024 * 1024;

/** A request kept while its sender steps up. */
export interface SavedRequest {
  readonly method: string;
  /** Normalized path and query, as the policy saw them. */
  readonly path: string;
  readonly content_type?: string;
  readonly body: Buffer;
}

interface StoredEnvelope {
  /** SHA-256 (base64url) of the session id that owns the request. */
  readonly owner: string;
  readonly iv: string;
  readonly ciphertext: string;
  readonly tag: string;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Keeps request bodies across a step-up in the key-value store, encrypted with AES-256-GCM
 * under a key that never enters the store. Each saved request is bound to the session that
 * made it (the owner hash is part of the GCM additional data), expires with the login attempt
 * and can be taken once.
 */
export class SavedRequestStore {
  readonly #store: KeyValueStore;
  readonly #key: Buffer;
  readonly maxBodyBytes: number;

  constructor(store: KeyValueStore, key: Buffer, maxBodyBytes: number) {
    if (key.length !== 32) {
      throw new IdentityError('WG_AUTH_INVALID_OPTION', `The saved-request key must be 32 bytes for AES-256-GCM, received ${key.length} bytes.`);
    }
    this.#store = store;
    this.#key = Buffer.from(key);
    this.maxBodyBytes = maxBodyBytes;
  }

  /** Encrypts and stores `request` for the session `sessionId`, and returns its id. */
  async save(sessionId: string, request: SavedRequest): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    await this.#write(id, ownerHash(sessionId), request);
    return id;
  }

  /**
   * Removes and returns the request `id` when it belongs to `sessionId`. Returns null when it
   * is unknown, expired, already used, or owned by another session; another session's attempt
   * leaves the request in place for its owner.
   */
  async take(id: string, sessionId: string): Promise<SavedRequest | null> {
    if (!ID_PATTERN.test(id)) {
      return null;
    }

    const envelope = parseEnvelope(await this.#store.get(storeKey(id)));
    if (envelope === null || !sameHash(envelope.owner, ownerHash(sessionId))) {
      return null;
    }
    const taken = parseEnvelope(await this.#store.take(storeKey(id)));
    if (taken === null || !sameHash(taken.owner, envelope.owner)) {
      return null;
    }

    return this.#decrypt(id, taken);
  }

  /**
   * Moves the request `id` from the session `oldSessionId` to `newSessionId`, because a
   * step-up gives the session a new id. Does nothing when `id` is not owned by `oldSessionId`.
   */
  async rebind(id: string, oldSessionId: string, newSessionId: string): Promise<void> {
    const request = await this.take(id, oldSessionId);
    if (request !== null) {
      await this.#write(id, ownerHash(newSessionId), request);
    }
  }

  /**
   * Reads a request body of at most {@link maxBodyBytes}. Throws `WG_AUTH_SAVED_REQUEST_TOO_LARGE`
   * naming the size and the limit as soon as the body is known to be larger.
   */
  async readBody(req: IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > this.maxBodyBytes) {
      tooLarge(declared, this.maxBodyBytes);
    }

    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > this.maxBodyBytes) {
        tooLarge(size, this.maxBodyBytes);
      }
      chunks.push(chunk as Buffer);
    }

    return Buffer.concat(chunks);
  }

  async #write(id: string, owner: string, request: SavedRequest): Promise<void> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(additionalData(id, owner));
    const plaintext = Buffer.from(JSON.stringify({ method: request.method, path: request.path, content_type: request.content_type, body: request.body.toString('base64') }));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const envelope: StoredEnvelope = { owner, iv: iv.toString('base64url'), ciphertext: ciphertext.toString('base64url'), tag: cipher.getAuthTag().toString('base64url') };

    await this.#store.set(storeKey(id), JSON.stringify(envelope), LOGIN_ATTEMPT_TTL_MS);
  }

  #decrypt(id: string, envelope: StoredEnvelope): SavedRequest | null {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(envelope.iv, 'base64url'));
      decipher.setAAD(additionalData(id, envelope.owner));
      decipher.setAuthTag(Buffer.from(envelope.tag, 'base64url'));
      const plaintext = Buffer.concat([decipher.update(Buffer.from(envelope.ciphertext, 'base64url')), decipher.final()]);
      const fields = JSON.parse(plaintext.toString('utf8')) as { method: string; path: string; content_type?: string; body: string };

      return {
        method: fields.method,
        path: fields.path,
        ...(fields.content_type === undefined ? {} : { content_type: fields.content_type }),
        body: Buffer.from(fields.body, 'base64'),
      };
    } catch {
      // A tampered entry or one written under another key (after a restart without a configured key).
      return null;
    }
  }
}

/**
 * Turns the replay GET into the kept request: method, path, `Content-Type` and `Content-Length`
 * are replaced, and the body is attached for the forwarder, which sends it in place of the
 * GET's empty stream.
 */
export function applySavedRequest(req: IncomingMessage, saved: SavedRequest): void {
  req.method = saved.method;
  req.url = saved.path;
  delete req.headers['transfer-encoding'];
  req.headers['content-length'] = String(saved.body.length);
  if (saved.content_type === undefined) {
    delete req.headers['content-type'];
  } else {
    req.headers['content-type'] = saved.content_type;
  }

  attachReplayBody(req, saved.body);
}

function tooLarge(size: number, limit: number): never {
  throw new IdentityError('WG_AUTH_SAVED_REQUEST_TOO_LARGE', `The form you sent is ${size} bytes, more than the ${limit} bytes Wardgate can keep while you confirm your identity, so it was not saved and not sent. Copy your text somewhere safe, reload the page, confirm your identity, then send it again in smaller parts.`);
}

function storeKey(id: string): string {
  return `saved-request:${id}`;
}

function ownerHash(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url');
}

function additionalData(id: string, owner: string): Buffer {
  return Buffer.from(`wardgate saved-request v1 ${id} ${owner}`);
}

function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function parseEnvelope(raw: string | null): StoredEnvelope | null {
  if (raw === null) {
    return null;
  }
  try {
    const value = JSON.parse(raw) as StoredEnvelope;
    return typeof value.owner === 'string' && typeof value.iv === 'string' && typeof value.ciphertext === 'string' && typeof value.tag === 'string' ? value : null;
  } catch {
    return null;
  }
}
