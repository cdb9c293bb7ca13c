import path from 'node:path';
import type { Node } from 'yaml';
import type { OptionReader } from '../config/reader.ts';
import { defaultInstanceId, INSTANCE_ID_PATTERN } from './files.ts';

/** The `audit:` section of the configuration file. */
export interface AuditConfig {
  /** Folder of the trail files. */
  readonly dir: string;
  /** Records between signed checkpoints. */
  readonly checkpoint_every: number;
  /** Seconds after which a checkpoint is signed even with fewer records. */
  readonly checkpoint_interval: number;
  /** Size in bytes at which a file is closed and the next one started. */
  readonly max_file_bytes: number;
  /** Milliseconds between fsync calls. */
  readonly fsync_interval: number;
  /** Folder of the checkpoint signing keys. */
  readonly key_dir: string;
  /** Names this instance's chain and files. */
  readonly instance_id: string;
}

export const AUDIT_OPTIONS = ['dir', 'checkpoint_every', 'checkpoint_interval', 'max_file_bytes', 'fsync_interval', 'key_dir', 'instance_id'] as const;

/** Returns the audit settings used when the configuration has no `audit:` section, with the trail in `dir`. */
export function defaultAuditConfig(dir: string): AuditConfig {
  return Object.freeze({
    dir,
    checkpoint_every: 1000,
    checkpoint_interval: 60,
    max_file_bytes: 64 * 1024 * 1024,
    fsync_interval: 200,
    key_dir: path.join(dir, 'keys'),
    instance_id: defaultInstanceId(),
  });
}

/**
 * Reads the `audit:` section. Relative folders are resolved against the configuration
 * file's folder; the default folder is `.wardgate/audit` there.
 */
export function readAuditConfig(reader: OptionReader, node: Node, resolve: (value: string) => string): AuditConfig {
  const fields = reader.map(node, 'audit', AUDIT_OPTIONS) ?? new Map<string, Node>();
  const dir = resolve(reader.string(fields.get('dir'), 'audit.dir', '.wardgate/audit'));
  const defaults = defaultAuditConfig(dir);

  const instanceId = reader.string(fields.get('instance_id'), 'audit.instance_id', defaults.instance_id);
  if (!INSTANCE_ID_PATTERN.test(instanceId)) {
    reader.report(fields.get('instance_id'), 'audit.instance_id', `expected 1 to 64 characters of A-Z, a-z, 0-9, "." or "_", got ${JSON.stringify(instanceId)}`);
  }
  const keyDir = fields.get('key_dir');
  return {
    dir,
    checkpoint_every: reader.integer(fields.get('checkpoint_every'), 'audit.checkpoint_every', 1, 1_000_000, defaults.checkpoint_every),
    checkpoint_interval: reader.integer(fields.get('checkpoint_interval'), 'audit.checkpoint_interval', 1, 86_400, defaults.checkpoint_interval),
    max_file_bytes: reader.integer(fields.get('max_file_bytes'), 'audit.max_file_bytes', 4096, 4 * 1024 * 1024 * 1024, defaults.max_file_bytes),
    fsync_interval: reader.integer(fields.get('fsync_interval'), 'audit.fsync_interval', 1, 60_000, defaults.fsync_interval),
    key_dir: keyDir === undefined ? defaults.key_dir : resolve(reader.string(keyDir, 'audit.key_dir')),
    instance_id: instanceId,
  };
}
