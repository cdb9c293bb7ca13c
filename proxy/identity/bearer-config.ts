import { readFile } from 'node:fs/promises';

import type { BearerConfig } from '../config/identity-sections.ts';
import type { BearerOptions } from './options.ts';

/** Turns the `bearer` configuration section into identity options, reading each issuer's `ca` file. */
export async function bearerOptions(config: BearerConfig): Promise<BearerOptions> {
  const issuers = await Promise.all(config.issuers.map(async (entry) => ({
    issuer: entry.issuer,
    audience: entry.audience,
    algorithms: entry.algorithms,
    clock_skew_s: entry.clock_skew,
    ...(entry.jwks_uri === undefined ? {} : { jwks_uri: entry.jwks_uri }),
    ...(entry.jwks_file === undefined ? {} : { jwks_file: entry.jwks_file }),
    ...(entry.ca === undefined ? {} : { ca: await readFile(entry.ca, 'utf8') }),
  })));

  return { issuers, jwks_cooldown_s: config.jwks_cooldown, jwks_max_age_s: config.jwks_max_age };
}
