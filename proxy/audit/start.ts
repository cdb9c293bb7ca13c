import path from 'node:path';
import type { Logger } from 'pino';
import type { WardgateConfig } from '../config/config.ts';
import { SCORER_DEFAULTS } from '../config/scorer-config.ts';
import { compilePatientPaths } from '../../scorer/features/patient-paths.ts';
import { defaultAuditConfig } from './config.ts';
import { openAuditTrail, type AuditTrail } from './writer.ts';

/**
 * Opens the audit trail a running Wardgate writes to, from the configuration's `audit:`
 * section or, when the configuration was built in code without one, the defaults under
 * `.wardgate/audit` in the working folder.
 */
export async function openConfiguredAuditTrail(
  config: WardgateConfig,
  options: { now?: () => number; logger?: Logger; onWrite?: (latencyMs: number, records: number) => void },
): Promise<AuditTrail> {
  const audit = config.audit ?? defaultAuditConfig(path.resolve('.wardgate/audit'));
  const trail = await openAuditTrail({
    dir: audit.dir,
    instanceId: audit.instance_id,
    keyDir: audit.key_dir,
    checkpointEvery: audit.checkpoint_every,
    checkpointIntervalMs: audit.checkpoint_interval * 1000,
    maxFileBytes: audit.max_file_bytes,
    fsyncIntervalMs: audit.fsync_interval,
    patientKey: config.patient_key,
    patientPaths: compilePatientPaths((config.scorer ?? SCORER_DEFAULTS).patient_paths, 'scorer.patient_paths'),
    now: options.now,
    logger: options.logger,
    onWrite: options.onWrite,
  });
  options.logger?.info({ dir: audit.dir, instance: audit.instance_id, file: trail.currentFile, seq: trail.seq, key_id: trail.publicKeys.key_id }, 'audit trail opened');
  return trail;
}
