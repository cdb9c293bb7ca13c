import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

/** Largest buffer allocated for one read; larger files are read in several. */
const MAX_CHUNK_BYTES = 64 * 1024 * 1024;
const MIN_CHUNK_BYTES = 64 * 1024;

/**
 * Raised when a path names something other than a regular file: a FIFO, a socket, a device
 * or a directory.
 */
export class NotRegularFileError extends Error {
  readonly path: string;
  /** Kind of file the path names, with an article: "a FIFO", "a directory". */
  readonly found: string;

  constructor(path: string, found: string, option?: string) {
    const fix = option === undefined ? 'give the path of a regular file' : `point ${option} at a regular file`;
    super(`${path}: expected a regular file, got ${found}; ${fix}`);
    this.name = 'NotRegularFileError';
    this.path = path;
    this.found = found;
  }
}

/** Options of {@link openRegularFile} and {@link readRegularFile}. */
export interface RegularFileOptions {
  /** Name of the setting that gave the path, for the message of a {@link NotRegularFileError}. */
  readonly option?: string;
}

/**
 * Opens a regular file for reading without waiting on it. A hot-reloaded file can be replaced
 * by anything, and a plain open() of a FIFO waits for a writer forever, holding a libuv worker
 * thread and keeping the process alive at shutdown. So stat() comes first, and a device or
 * socket is never opened. O_NONBLOCK makes open() return at once when a FIFO replaced the file
 * after stat(), and fstat() on the handle checks what was actually opened. O_NONBLOCK has no
 * effect on reads of a regular file.
 *
 * @throws {NotRegularFileError} when the path does not name a regular file.
 * @throws the errno errors of stat() and open(), such as ENOENT and EACCES.
 */
export async function openRegularFile(path: string, options: RegularFileOptions = {}): Promise<{ handle: FileHandle; info: Stats }> {
  assertRegularFile(path, await stat(path), options.option);

  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    assertRegularFile(path, info, options.option);
    return { handle, info };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Reads a regular file, at most `maxBytes` of it. To detect an oversized file, ask for one
 * byte more than the limit and compare the length.
 *
 * @throws the errors of {@link openRegularFile}, and the errno errors of read().
 */
export async function readRegularFile(path: string, maxBytes = Number.MAX_SAFE_INTEGER, options: RegularFileOptions = {}): Promise<Buffer> {
  const { handle, info } = await openRegularFile(path, options);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    // The size from fstat() is only a hint: the file can grow, and files in /proc report 0.
    while (total < maxBytes) {
      const hint = Math.max(info.size - total + 1, MIN_CHUNK_BYTES);
      const chunk = Buffer.allocUnsafe(Math.min(hint, MAX_CHUNK_BYTES, maxBytes - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

/** Returns the kind of file that `info` describes, with an article: "a FIFO", "a directory". */
export function describeFileType(info: Stats): string {
  if (info.isFile()) return 'a regular file';
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';

  return 'a special file';
}

function assertRegularFile(path: string, info: Stats, option: string | undefined): void {
  if (!info.isFile()) throw new NotRegularFileError(path, describeFileType(info), option);
}

/** Raised when a file is larger than the limit of the setting that names it. */
export class FileTooLargeError extends Error {
  readonly path: string;
  readonly limit: number;

  constructor(path: string, limit: number, option?: string) {
    const fix = option === undefined ? 'give a smaller file' : `point ${option} at a smaller file`;
    super(`${path}: expected at most ${limit} bytes, got a larger file; ${fix}`);
    this.name = 'FileTooLargeError';
    this.path = path;
    this.limit = limit;
  }
}

/**
 * Reads a regular file of at most `limit` bytes. At most one byte more than the limit is read,
 * so a huge or endless file costs no more memory than an allowed one.
 *
 * @throws {FileTooLargeError} when the file is larger than `limit` bytes.
 * @throws the errors of {@link readRegularFile}.
 */
export async function readRegularFileWithin(path: string, limit: number, options: RegularFileOptions = {}): Promise<Buffer> {
  const bytes = await readRegularFile(path, limit + 1, options);
  if (bytes.length > limit) throw new FileTooLargeError(path, limit, options.option);
  return bytes;
}
