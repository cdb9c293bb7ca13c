import { createHash } from 'node:crypto';

import { MemoryBaselineStore } from '../baselines/memory-store.ts';
import { buildFeatureVector } from '../features/extract.ts';
import { PatientPseudonymizer, extractPatientIds } from '../features/patient.ts';
import type { SimulatedRequest } from './simulator.ts';

/**
 * Turns simulated requests into feature rows through the same patient extraction, baseline
 * store logic and feature code as live scoring, in time order.
 */
export function extractFeatureRows(records: readonly SimulatedRequest[], seed: number): Float32Array[] {
  const store = new MemoryBaselineStore();
  // The simulated patients are fictional, so a key derived from the seed is enough here.
  const pseudonymizer = new PatientPseudonymizer(createHash('sha256').update(`wardgate-training-${seed}`).digest());

  return records.map((record) => {
    const patientIds = extractPatientIds(record.input.path);
    const raw = store.observeNow(record.input, patientIds.map((id) => pseudonymizer.pseudonymize(id)));

    return buildFeatureVector(record.input, raw, { patientCount: patientIds.length, utcOffsetMinutes: 0 });
  });
}
