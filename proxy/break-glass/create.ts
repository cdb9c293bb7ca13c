import type { RedisClient } from '../../scorer/index.ts';
import type { Logger } from 'pino';
import type { WardgateConfig } from '../config/config.ts';
import { SCORER_DEFAULTS } from '../config/scorer-config.ts';
import { compilePatientPaths } from '../../scorer/features/patient-paths.ts';
import type { AuditPort, IdentityPort } from '../ports.ts';
import { BenignPatterns, ReviewQueue } from '../review/queue.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';
import { DEFAULT_OVERSIGHT_CONFIG, type OversightConfig } from './config.ts';
import { Oversight } from './oversight.ts';

/** Returns the configuration's `review`, `break_glass` and `notify` sections with defaults filled in. */
export function oversightConfigOf(config: WardgateConfig): OversightConfig {
  return {
    review: config.review ?? DEFAULT_OVERSIGHT_CONFIG.review,
    break_glass: config.break_glass ?? DEFAULT_OVERSIGHT_CONFIG.break_glass,
    notify: config.notify ?? DEFAULT_OVERSIGHT_CONFIG.notify,
  };
}

/**
 * Builds the pipeline's oversight layer. Without a Redis client (the in-process store)
 * there is no review queue and no benign-pattern lookup, and it logs a warning.
 */
export function createOversight(input: {
  config: WardgateConfig;
  store: KeyValueStore;
  redis: RedisClient | undefined;
  identity: Pick<IdentityPort, 'sendStepUp'>;
  audit: AuditPort | undefined;
  now: () => number;
  logger: Logger;
}): Oversight {
  const config = oversightConfigOf(input.config);
  const prefix = input.config.redis.key_prefix;
  if (!input.redis) input.logger.warn('review queue disabled: it needs Redis, and Wardgate runs on the in-process store');

  return new Oversight({
    store: input.store,
    config,
    patientKey: input.config.patient_key,
    patientPaths: compilePatientPaths((input.config.scorer ?? SCORER_DEFAULTS).patient_paths, 'scorer.patient_paths'),
    ...(input.redis
      ? {
          review: new ReviewQueue(input.redis, { prefix, maxLength: config.review.stream_max_length, maxEntriesPerUserHour: config.review.max_entries_per_user_hour, logger: input.logger }),
          benign: new BenignPatterns(input.redis, prefix),
        }
      : {}),
    ...(input.audit ? { audit: input.audit } : {}),
    identity: input.identity,
    now: input.now,
    logger: input.logger,
  });
}
