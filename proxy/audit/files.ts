import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';

/** Instance ids are used in file names, so they are limited to these characters. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9._]{1,64}$/;

const FILE_NAME = /^audit-([A-Za-z0-9._]{1,64})-(\d{6,})\.jsonl$/;

/** One file of an instance's trail. */
export interface AuditFile {
  readonly instance: string;
  /** Position of the file in the instance's sequence, from 1. */
  readonly index: number;
  readonly name: string;
  readonly path: string;
}

/** Returns the file name of an instance's `index`-th file, e.g. `audit-wg1-000003.jsonl`. */
export function auditFileName(instance: string, index: number): string {
  return `audit-${instance}-${String(index).padStart(6, '0')}.jsonl`;
}

/** Lists the trail files in `dir` by instance, each list sorted by index. Other files are ignored. */
export async function listAuditFiles(dir: string): Promise<Map<string, AuditFile[]>> {
  const byInstance = new Map<string, AuditFile[]>();
  for (const name of await readdir(dir)) {
    const match = FILE_NAME.exec(name);
    if (!match) continue;
    const file: AuditFile = { instance: match[1]!, index: Number(match[2]), name, path: path.join(dir, name) };
    const list = byInstance.get(file.instance) ?? [];
    list.push(file);
    byInstance.set(file.instance, list);
  }
  for (const list of byInstance.values()) list.sort((a, b) => a.index - b.index);
  return byInstance;
}

/** Returns the UTC day (`YYYY-MM-DD`) of a time in milliseconds; files rotate when it changes. */
export function utcDay(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/** Returns the default instance id: the host name, with characters not allowed in file names replaced by `_`. */
export function defaultInstanceId(): string {
  return hostname().replace(/[^A-Za-z0-9._]/g, '_').slice(0, 64) || 'wardgate';
}
