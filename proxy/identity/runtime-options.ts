import type { Logger } from 'pino';

import type { WardgateConfig } from '../config/config.ts';
import type { IdentityOptions, SessionOptions } from './options.ts';

/**
 * Maps the optional `session:` settings of the configuration file to identity options, and warns
 * when no key for kept requests is configured.
 */
export function identitySessionExtras(config: WardgateConfig, logger: Logger): { session: Partial<SessionOptions>; identity: Pick<IdentityOptions, 'saved_requests' | 'shared_sign_in'> } {
  const session = config.session;
  if (session.saved_request_key === undefined) {
    logger.warn('no saved-request key is configured (session.saved_request_key_env): a POST kept across a step-up can only be replayed by this instance and is lost on restart');
  }

  return {
    session: session.claims_refresh_interval === undefined ? {} : { claims_refresh_interval_s: session.claims_refresh_interval },
    identity: {
      saved_requests: {
        ...(session.max_saved_body_bytes === undefined ? {} : { max_body_bytes: session.max_saved_body_bytes }),
        ...(session.saved_request_key === undefined ? {} : { key: session.saved_request_key }),
      },
      ...(session.shared_sign_in === undefined ? {} : { shared_sign_in: session.shared_sign_in }),
    },
  };
}
