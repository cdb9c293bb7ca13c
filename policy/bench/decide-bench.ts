/**
 * Measures `decide()` on the demo policy and on a generated 40-rule policy.
 * Run: `node policy/bench/decide-bench.ts`. Prints microseconds per call.
 */
import { readFileSync } from 'node:fs';

import { compilePolicy, type CompiledPolicy, type DecisionContext } from '../index.ts';

const ITERATIONS = 200_000;

function context(groups: string[], path: string, risk: number): DecisionContext {
  return {
    principal: { subject: 'alice', groups, method: 'session' },
    route: { id: 'ehr', host: 'ehr.localhost', pathPrefix: '/', sensitivity: 'normal' },
    request: { method: 'GET', host: 'ehr.localhost:8443', path, ip: '127.0.0.1', queryParams: [] },
    risk,
    features: {},
    tls: { protocol: 'TLSv1.3', group: 'X25519MLKEM768' },
    time: Date.UTC(2025, 0, 6, 10),
  };
}

function measure(name: string, policy: CompiledPolicy, contexts: DecisionContext[]): void {
  for (let i = 0; i < 20_000; i++) policy.decide(contexts[i % contexts.length]!);

  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) policy.decide(contexts[i % contexts.length]!);
  const elapsed = Number(process.hrtime.bigint() - start) / 1000;

  process.stdout.write(`${name}: ${(elapsed / ITERATIONS).toFixed(2)} µs per decide (${ITERATIONS} calls)\n`);
}

const demo = compilePolicy(readFileSync(new URL('../examples/demo.yaml', import.meta.url)), 'demo.yaml', { timeZone: 'Europe/Berlin' });
const contexts = [
  context(['physicians', 'clinicians'], '/fhir/Patient/1', 0.1),
  context(['records'], '/fhir/Patient/1', 0.2),
  context(['records'], '/fhir/Observation/1', 0.3),
  context(['nurses', 'clinicians'], '/fhir/Patient/1', 0.7),
];
measure('demo policy (11 rules, 5 with when)', demo, contexts);

const rules = Array.from({ length: 40 }, (_, i) => `  - id: r${i}
    match: { routes: [ehr], groups: [group-${i}], paths: ["/app-${i}/**"] }
    ${i % 4 === 0 ? `when: "risk >= 0.${(i % 9) + 1} && time.hour < 20"\n    ` : ''}action: allow`).join('\n');
const large = compilePolicy(`version: 1\nrules:\n${rules}\n  - id: last\n    action: allow\n`, 'large.yaml');
measure('40 rules, every rule tried', large, [context(['nobody'], '/fhir/Patient/1', 0.5)]);
measure('40 rules, rule 38 decides', large, [context(['group-38'], '/app-38/x', 0.5)]);
