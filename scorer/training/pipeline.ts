import { createHash } from 'node:crypto';

import { MemoryBaselineStore } from '../baselines/memory-store.ts';
import { FeatureExtractor } from '../features/extractor.ts';
import { PatientPseudonymizer } from '../features/patient.ts';
import { panelCareSource } from './replay-format.ts';
import type { Simulation } from './simulator.ts';

/** Key that pseudonymizes the simulation's fictional patients; derived from the seed, never used live. */
export function simulationPatientKey(seed: number): Buffer {
  return createHash('sha256').update(`wardgate-simulation-${seed}`).digest();
}

/**
 * Turns simulated requests into feature rows through the same patient extraction, care
 * source, baseline store logic and feature code as live scoring, in time order. Each
 * response is recorded right after its request, as the proxy does when the response ends.
 */
export async function extractFeatureRows(simulation: Simulation, seed: number): Promise<Float32Array[]> {
  const store = new MemoryBaselineStore();
  const pseudonymizer = new PatientPseudonymizer(simulationPatientKey(seed));
  const extractor = new FeatureExtractor({ store, pseudonymizer, careSource: panelCareSource(simulation.panel, pseudonymizer) });
  const rows: Float32Array[] = [];

  for (const record of simulation.records) {
    rows.push(await extractor.extract(record.input));
    // Training has no decisions: every simulated request reached the application and showed its patients.
    store.showPatientsNow(record.input.user, extractor.patientPseudonyms(record.input), record.input.time);
    store.observeResponseNow({
      user: record.input.user,
      groups: record.input.groups,
      time: record.input.time,
      routeId: record.input.routeId,
      status: record.status,
      bytes: record.bytes,
    });
  }

  return rows;
}
