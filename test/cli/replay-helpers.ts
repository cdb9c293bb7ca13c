import type { AccessRecord } from '../../proxy/replay/access-log.ts';
import { createRouter } from '../../proxy/routing/router.ts';

export const MODEL_PATH = new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname;
const MONDAY_NOON = Date.UTC(2025, 2, 3, 12);

/** Returns a 200 response of the demo physician to `target`, one minute after noon per line number. */
export function record(line: number, target: string): AccessRecord {
  return {
    line,
    time: MONDAY_NOON + line * 60_000,
    user: 'demo-physician',
    groups: ['physicians', 'clinicians'],
    ip: '10.20.1.17',
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/133.0',
    method: 'GET',
    host: 'ehr.localhost',
    target,
    status: 200,
    bytes: 1800,
  };
}

/** Creates the router of the demo's single route `ehr`. */
export function ehrRouter(): ReturnType<typeof createRouter> {
  return createRouter([
    { id: 'ehr', host: 'ehr.localhost', path_prefix: '/', upstream: 'http://127.0.0.1:9000', sensitivity: 'normal', fail_mode: { redis: 'closed', scorer: 'closed', idp: 'closed' } },
  ]);
}
