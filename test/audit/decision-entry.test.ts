import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { auditRequest, edgeDecision } from '../../proxy/audit/pipeline-audit.ts';
import type { PreparedRequest } from '../../proxy/pipeline/prepare.ts';
import type { AuditEntry } from '../../proxy/ports.ts';
import type { RouteConfig } from '../../proxy/routing/router.ts';
import { failModeDecision } from '../../proxy/pipeline/fail-modes.ts';

const route: RouteConfig = { id: 'ehr', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'high', fail_mode: { redis: 'closed', scorer: 'open', idp: 'closed' } };
const prepared: PreparedRequest = { ok: true, url: new URL('https://ehr.example/fhir/Patient/p-1?_format=json'), host: 'ehr.example', route, clientIp: '10.1.2.3' };
const req = { method: 'GET', url: '/fhir/Patient/p-1?_format=json', headers: { host: 'ehr.example' }, socket: { remoteAddress: '::ffff:10.1.2.3' } } as unknown as IncomingMessage;
const tls = { protocol: 'TLSv1.3', group: 'X25519MLKEM768' };
const principal = { subject: 'dr-house', groups: ['physicians'], method: 'session' as const, acr: 'urn:wardgate:acr:password', device: 'ward-7-pc' };

function capture(): { port: { append(entry: AuditEntry): void }; entries: AuditEntry[] } {
  const entries: AuditEntry[] = [];
  return { port: { append: (entry) => entries.push(entry) }, entries };
}

t.test('scored decision carries every field', async (t) => {
  const { port, entries } = capture();
  const result = { risk: 0.42, features: { a: 1 }, top: [{ name: 'new_network', value: 1, contribution: 0.3 }], modelVersion: 'risk-v1' };
  const decision = { action: 'step_up' as const, rule: 'high-risk-step-up', reasons: ['risk 0.42 above 0.4'], risk: 0.42 };
  auditRequest(port, req, { traceId: 'a'.repeat(32), tls, prepared, principal, decision, result, policyHash: 'sha256:abc', breakGlass: { justification: 'cardiac arrest in bed 4', reason_code: 'emergency' } });

  t.same(entries, [{
    kind: 'decision',
    trace_id: 'a'.repeat(32),
    principal: { subject: 'dr-house', method: 'session', groups: ['physicians'], acr: 'urn:wardgate:acr:password' },
    device: 'ward-7-pc',
    client: { ip: '10.1.2.3' },
    host: 'ehr.example',
    route: 'ehr',
    method: 'GET',
    path: '/fhir/Patient/p-1?_format=json',
    risk: 0.42,
    top: [{ name: 'new_network', value: 1, contribution: 0.3 }],
    action: 'step_up',
    rule: 'high-risk-step-up',
    reasons: ['risk 0.42 above 0.4'],
    policy_hash: 'sha256:abc',
    model_version: 'risk-v1',
    tls,
    fail_mode: null,
    break_glass: { justification: 'cardiac arrest in bed 4', reason_code: 'emergency' },
  }]);
});

t.test('fail modes are recorded with their mode', async (t) => {
  const { port, entries } = capture();
  auditRequest(port, req, { traceId: 'b'.repeat(32), tls, prepared, principal: null, decision: failModeDecision('redis', 'closed', 0), failedDependency: 'redis' });
  auditRequest(port, req, { traceId: 'c'.repeat(32), tls, prepared, principal, decision: { action: 'allow', rule: 'default', reasons: [], risk: 0 }, failedDependency: 'scorer' });
  t.match(entries[0], { action: 'block', rule: 'fail_mode.redis', fail_mode: { dependency: 'redis', mode: 'closed' }, principal: null });
  t.match(entries[1], { action: 'allow', fail_mode: { dependency: 'scorer', mode: 'open' }, model_version: null, top: [] });
});

t.test('request rejected before routing records no target', async (t) => {
  const { port, entries } = capture();
  const rejected: PreparedRequest = { ok: false, status: 400, code: 'WG_HTTP_BAD_PATH', message: 'bad' };
  auditRequest(port, req, { traceId: 'd'.repeat(32), tls, prepared: rejected, decision: edgeDecision('block', 'request.invalid', 'WG_HTTP_BAD_PATH') });
  t.match(entries[0], { route: null, client: { ip: '10.1.2.3' }, host: 'ehr.example', path: '~redacted', reasons: ['WG_HTTP_BAD_PATH'] });
});

t.test('no audit port is a no-op', async (t) => {
  t.doesNotThrow(() => auditRequest(undefined, req, { traceId: 'e', tls, prepared, decision: edgeDecision('block', 'x', 'y') }));
});
