import type { Logger } from 'pino';
import { createScorer, type BaselineStore, type Scorer } from '../scorer/index.ts';
import { createFhirCareSource, type CareCache } from '../scorer/care/fhir-source.ts';
import { watchPanelFile, type PanelCareSource } from '../scorer/care/panel-source.ts';
import { NO_CARE_SOURCE, type CareRelationshipSource } from '../scorer/care/source.ts';
import { PatientPseudonymizer } from '../scorer/features/patient.ts';
import { compilePatientPaths, type PatientPaths } from '../scorer/features/patient-paths.ts';
import { createModelRunner, type ModelRunner } from '../scorer/model/model-runner.ts';
import type { WardgateConfig } from './config/config.ts';
import { CARE_DEFAULTS, SCORER_DEFAULTS } from './config/scorer-config.ts';

export type CareHealth = { source: 'none' | 'fhir' } | { source: 'panel'; last_reload_error: string | null };

/** The scorer with its hot-reloading model runner and care source, as the proxy runs it. */
export interface ScorerRuntime {
  readonly scorer: Scorer;
  readonly runner: ModelRunner;
  readonly care: CareRelationshipSource;
  /** The compiled `scorer.patient_paths` the scorer uses, for the pipeline's patient id check. */
  readonly patientPaths: PatientPaths;
  /** The `model` object of the health endpoint. */
  modelHealth(): { version: string; last_reload_error: string | null };
  /** The `care` object of the health endpoint: the source, and for a panel file its last reload error. */
  careHealth(): CareHealth;
  close(): Promise<void>;
}

/**
 * Opens the model runner (hot reload, batching, deadline), the configured care source and the
 * scorer on top of them, and logs model reloads and care-source outages.
 *
 * @throws the model and care-source errors at start-up, when there is nothing good to keep.
 */
export async function openScorerRuntime(
  config: WardgateConfig,
  store: BaselineStore,
  cache: CareCache,
  logger: Logger,
  hooks: { readonly onModelReload?: (ok: boolean) => void } = {},
): Promise<ScorerRuntime> {
  const settings = config.scorer ?? SCORER_DEFAULTS;
  const runner = await createModelRunner({
    path: config.model,
    batchMax: settings.batch_max,
    batchWaitUs: settings.batch_wait_us,
    deadlineMs: settings.deadline_ms,
    pollMs: settings.reload_poll_ms,
    onReload: (version) => {
      logger.info({ file: config.model, model: version }, 'model reloaded');
      hooks.onModelReload?.(true);
    },
    onReloadError: (error) => {
      logger.error({ file: config.model, err: error, model: runner.version }, 'model reload failed; the previous model stays in force');
      hooks.onModelReload?.(false);
    },
  });

  try {
    const care = await openCareSource(config, cache, logger);
    const scorer = await createScorer({
      store,
      modelPath: config.model,
      patientKey: config.patient_key,
      careSource: care,
      model: runner,
      unexplainedFloor: { scale: settings.unexplained_floor.scale, usualLimit: settings.unexplained_floor.usual_limit, max: settings.unexplained_floor.max },
      patientPaths: settings.patient_paths,
      onResponseError: (error, update) =>
        logger.warn({ err: error, update: update.method, user: update.user, route: update.routeId }, `baseline update ${update.method} failed after the response; the request itself was not affected`),
    });

    return {
      scorer,
      runner,
      care,
      patientPaths: compilePatientPaths(settings.patient_paths, 'scorer.patient_paths'),
      modelHealth: () => ({ version: runner.version, last_reload_error: runner.lastReloadError() }),
      careHealth: () => careHealthOf(config, care),
      close: async () => {
        await scorer.close();
        await care.close?.();
      },
    };
  } catch (error) {
    await runner.close();
    throw error;
  }
}

function careHealthOf(config: WardgateConfig, care: CareRelationshipSource): CareHealth {
  if (care === NO_CARE_SOURCE) return { source: 'none' };
  if ((config.care ?? CARE_DEFAULTS).source === 'panel') return { source: 'panel', last_reload_error: (care as PanelCareSource).lastReloadError() };

  return { source: 'fhir' };
}

async function openCareSource(config: WardgateConfig, cache: CareCache, logger: Logger): Promise<CareRelationshipSource> {
  const care = config.care ?? CARE_DEFAULTS;
  const pseudonymizer = new PatientPseudonymizer(config.patient_key);

  if (care.source === 'panel' && care.panel_file !== undefined) {
    return watchPanelFile(care.panel_file, pseudonymizer, {
      onReload: (file, lostSections) => {
        if (lostSections.length > 0) {
          logger.warn({ file, lost_sections: lostSections }, 'care panel reloaded without sections the previous panel had; check that the file was written whole');
        } else {
          logger.info({ file }, 'care panel reloaded');
        }
      },
      onReloadError: (error) => logger.error({ file: care.panel_file, err: error }, 'care panel reload failed; the previous panel stays in force'),
    });
  }

  if (care.source === 'fhir' && care.fhir_base !== undefined) {
    return createFhirCareSource({
      fhirBase: care.fhir_base,
      pseudonymizer,
      ttlSeconds: care.ttl,
      timeoutMs: care.request_timeout_ms,
      searchTimeoutMs: care.search_timeout_ms,
      cache,
      onOutage: (error) => logger.error({ err: error, fhir_base: care.fhir_base }, 'care source unreachable; care relationships are unknown until it responds again'),
      onRecovered: () => logger.info({ fhir_base: care.fhir_base }, 'care source reachable again'),
    });
  }

  return NO_CARE_SOURCE;
}
