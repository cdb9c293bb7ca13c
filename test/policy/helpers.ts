import { Writable } from 'node:stream';

import type { DecisionContext } from '../../policy/index.ts';

/** Monday 2025-01-06 10:00 UTC. */
export const MONDAY_10_UTC = Date.UTC(2025, 0, 6, 10, 0, 0);

export interface ContextOverrides {
  readonly principal?: Partial<NonNullable<DecisionContext['principal']>> | null;
  readonly route?: Partial<DecisionContext['route']>;
  readonly request?: Partial<DecisionContext['request']>;
  readonly risk?: number;
  readonly features?: Record<string, number>;
  readonly tls?: Partial<DecisionContext['tls']>;
  readonly elevatedAcr?: readonly string[];
  readonly time?: number;
}

/** Builds a decision context for a physician on the ehr route, with fields replaced by `overrides`. */
export function makeContext(overrides: ContextOverrides = {}): DecisionContext {
  const principal = overrides.principal === null
    ? null
    : { subject: 'alice', groups: ['physicians', 'clinicians'], acr: 'urn:wardgate:acr:pwd', amr: ['pwd'], method: 'session' as const, ...overrides.principal };

  return {
    principal,
    route: { id: 'ehr', host: 'ehr.localhost', pathPrefix: '/', sensitivity: 'normal', ...overrides.route },
    request: { method: 'GET', host: 'ehr.localhost:8443', path: '/fhir/Patient/1', ip: '127.0.0.1', queryParams: [], ...overrides.request },
    risk: overrides.risk ?? 0.1,
    features: overrides.features ?? {},
    tls: { protocol: 'TLSv1.3', group: 'X25519MLKEM768', ...overrides.tls },
    ...(overrides.elevatedAcr && { elevatedAcr: overrides.elevatedAcr }),
    time: overrides.time ?? MONDAY_10_UTC,
  };
}

/** A writable stream that keeps what is written to it as text. */
export class CapturedOutput extends Writable {
  text = '';

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
}
