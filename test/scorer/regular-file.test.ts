import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { FileTooLargeError, NotRegularFileError, readRegularFile, readRegularFileWithin } from '../../scorer/regular-file.ts';
import { loadRiskModel } from '../../scorer/model/risk-model.ts';
import { MAX_MODEL_BYTES } from '../../scorer/model/metadata.ts';

const noFifos = process.platform === 'win32' && 'no FIFOs';

t.test('readRegularFile reads a regular file up to the limit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-regular-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'data.txt');
  writeFileSync(file, 'abcdef');
  symlinkSync(file, join(dir, 'link.txt'));

  t.equal((await readRegularFile(file)).toString(), 'abcdef');
  t.equal((await readRegularFile(file, 4)).toString(), 'abcd', 'stops at maxBytes');
  t.equal((await readRegularFile(join(dir, 'link.txt'))).toString(), 'abcdef', 'a symbolic link to a regular file is followed');
  await t.rejects(readRegularFile(join(dir, 'missing.txt')), { code: 'ENOENT' });
});

t.test('readRegularFile rejects other file types without waiting', { skip: noFifos }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-regular-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'data.fifo');
  execFileSync('mkfifo', [fifo]);
  t.teardown(() => releaseReader(fifo));
  const socket = join(dir, 'data.sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => server.close());

  const cases: [path: string, found: string][] = [[fifo, 'a FIFO'], [socket, 'a socket'], ['/dev/null', 'a character device'], [dir, 'a directory']];
  for (const [path, found] of cases) {
    const error = await readRegularFile(path, undefined, { option: 'some.file' }).then(() => undefined, (caught: unknown) => caught);
    t.ok(error instanceof NotRegularFileError, `${found} gives NotRegularFileError`);
    t.match(error, { path, found, message: `${path}: expected a regular file, got ${found}; point some.file at a regular file` });
  }
  await t.rejects(readRegularFile(fifo), { message: `${fifo}: expected a regular file, got a FIFO; give the path of a regular file` }, 'without an option name');
});

/** Opens the FIFO's write end and closes it, so that a reader waiting in open() returns. */
function releaseReader(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // ENXIO: no reader is waiting. ENOENT: the FIFO is gone.
  }
}

t.test('readRegularFileWithin rejects a file above the limit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-regular-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'data.txt');
  writeFileSync(file, 'abcdef');

  t.equal((await readRegularFileWithin(file, 6)).toString(), 'abcdef', 'a file of exactly the limit is read');
  await t.rejects(readRegularFileWithin(file, 5, { option: 'tls.crl' }), new FileTooLargeError(file, 5, 'tls.crl'));
  t.equal(new FileTooLargeError(file, 5, 'tls.crl').message, `${file}: expected at most 5 bytes, got a larger file; point tls.crl at a smaller file`);
});

t.test('a sparse model file above the limit is rejected after the limit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-regular-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'huge.onnx');
  // A 2 GiB sparse file takes no disk space; reading all of it would take 2 GiB of memory.
  execFileSync('truncate', ['-s', '2G', file]);

  await t.rejects(loadRiskModel(file), { code: 'WG_SCORER_MODEL_INVALID', message: new RegExp(`expected at most ${MAX_MODEL_BYTES} bytes, got a larger file`) });
});
