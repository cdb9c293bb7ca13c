import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Span } from '@opentelemetry/api';
import { pino } from 'pino';
import t from 'tap';
import type { Decision } from '../../policy/decision.ts';
import { DEFAULT_OVERSIGHT_CONFIG } from '../../proxy/break-glass/config.ts';
import { Oversight } from '../../proxy/break-glass/oversight.ts';
import type { Principal } from '../../proxy/identity/principal.ts';
import type { AuditEntry } from '../../proxy/ports.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';

const store = new MemoryKeyValueStore();
const audit: AuditEntry[] = [];
const log = pino({ level: 'silent' });
const oversight = new Oversight({ store, config: DEFAULT_OVERSIGHT_CONFIG, patientKey: Buffer.alloc(32, 9), audit: { append: (entry) => void audit.push(entry) }, identity: { sendStepUp: () => undefined }, now: () => 1_000, logger: log });
t.teardown(() => store.close());

interface Captured {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

/** Returns a response double that records the status, headers and body. */
function responseDouble(): { res: ServerResponse; captured: Captured } {
  const captured: Captured = { status: 0, headers: {}, body: '' };
  const res = {
    headersSent: false,
    setHeader: (name: string, value: unknown) => void (captured.headers[name.toLowerCase()] = value),
    writeHead: (status: number, headers: Record<string, unknown> = {}) => {
      captured.status = status;
      Object.assign(captured.headers, headers);
    },
    end: (body?: string) => void (captured.body = body ?? ''),
  } as unknown as ServerResponse;
  return { res, captured };
}

function bearer(subject: string): Principal {
  return { subject, groups: ['devices'], method: 'bearer' };
}

const route = { id: 'lab', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'high' as const, fail_mode: { redis: 'closed' as const, scorer: 'closed' as const, idp: 'closed' as const } };
const span = { setAttribute: () => span } as unknown as Span;

async function blockedOffer(principal: Principal): Promise<{ offer: string; csrf: string }> {
  const decision: Decision = { action: 'break_glass', rule: 'lab-break-glass', reasons: [], risk: 0.2, breakGlass: { ttl: 300, reason_codes: ['emergency_care'] } };
  const { res, captured } = responseDouble();
  const prepared = { ok: true as const, url: new URL('https://lab.localhost/results/42'), host: 'lab.localhost', clientIp: '127.0.0.1', route };
  const req = { method: 'GET', headers: { authorization: 'Bearer x', accept: 'application/json' } } as unknown as IncomingMessage;
  t.equal(await oversight.enforce({ req, res, prepared, principal, outcome: { decision, reviewedBenign: false }, result: null, incidentId: 'a'.repeat(32), span, now: 1_000 }), null);
  t.equal(captured.status, 403);
  return (JSON.parse(captured.body) as { break_glass: { offer: string; csrf: string } }).break_glass;
}

async function claim(principal: Principal, body: Record<string, string>): Promise<Captured> {
  const req = new PassThrough() as unknown as IncomingMessage & PassThrough;
  req.method = 'POST';
  req.headers = { authorization: 'Bearer x', accept: 'application/json', 'content-type': 'application/json' };
  req.end(JSON.stringify(body));
  const { res, captured } = responseDouble();
  const prepared = { ok: true as const, url: new URL('https://lab.localhost/.wardgate/break-glass'), host: 'lab.localhost', clientIp: '127.0.0.1', route };
  t.equal(await oversight.handleRoute(req, res, prepared, { kind: 'authenticated', principal, elevatedAcr: [] }, 'b'.repeat(32), log), true);
  return captured;
}

const justification = 'Analyser result needed for a patient in resuscitation now.';

t.test('bearer offer is bound to its subject', async (t) => {
  const token = await blockedOffer(bearer('device-7'));

  const stolen = await claim(bearer('device-8'), { ...token, reason_code: 'emergency_care', justification });
  t.equal(stolen.status, 403, stolen.body);
  t.equal(JSON.parse(stolen.body).error, 'WG_BREAK_GLASS_CSRF_REJECTED');

  const granted = await claim(bearer('device-7'), { ...token, reason_code: 'emergency_care', justification });
  t.equal(granted.status, 200);
  t.match(JSON.parse(granted.body), { granted: true, route: 'lab', expires_at: new Date(301_000).toISOString() });
  t.match(audit.at(-1), { kind: 'break_glass', event: 'claim', user: 'device-7', route: 'lab', justification, trace_id: 'b'.repeat(32), offer_trace_id: 'a'.repeat(32) });

  const facts = await oversight.facts(bearer('device-7'), 'lab', null, 2_000, log);
  t.equal(facts.breakGlassActive, true);
  t.equal((await oversight.facts(bearer('device-8'), 'lab', null, 2_000, log)).breakGlassActive, false, 'the grant is per user');
  t.equal((await oversight.facts(bearer('device-7'), 'ehr', null, 2_000, log)).breakGlassActive, false, 'the grant is per route');
  t.equal((await oversight.facts(bearer('device-7'), 'lab', null, 301_000, log)).breakGlassActive, false, 'the grant ends after its ttl');
});
