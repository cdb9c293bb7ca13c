// Policy evaluation time per decision, for the demo policy and a generated 500-rule policy.
// Run alone with `node test/bench/policy-bench.ts`; `npm run bench` runs it after the HTTP load.
import { readFileSync } from 'node:fs';
import os from 'node:os';

import { compilePolicy, type CompiledPolicy, type DecisionContext } from '../../policy/index.ts';

const ITERATIONS = Number(process.env.BENCH_POLICY_ITERATIONS ?? 200_000);
const WARMUP = 20_000;
/** Target time per decision for a 500-rule policy, in microseconds. */
const TARGET_US = 10;
const ROUTES = 20;
const RULES = 500;

function context(overrides: { route?: string; groups?: string[]; path?: string; risk?: number; ip?: string; time?: number; method?: 'session' | 'mtls'; device?: string }): DecisionContext {
  return {
    principal: { subject: 'alice', groups: overrides.groups ?? ['clinicians'], method: overrides.method ?? 'session', ...(overrides.device && { device: overrides.device }) },
    route: { id: overrides.route ?? 'ehr', host: 'ehr.localhost', pathPrefix: '/', sensitivity: 'normal' },
    request: { method: 'GET', host: 'ehr.localhost:8443', path: overrides.path ?? '/fhir/Patient/1', ip: overrides.ip ?? '10.30.1.20', queryParams: [] },
    risk: overrides.risk ?? 0.2,
    features: {},
    tls: { protocol: 'TLSv1.3', group: 'X25519MLKEM768' },
    time: overrides.time ?? Date.UTC(2025, 0, 6, 10),
  };
}

/**
 * Generates a 500-rule policy spread over 20 routes, with every kind of match key and a CEL `when`
 * on every fifth rule. The last rule of each route allows its own group.
 */
export function generatePolicy(): string {
  const lines = ['version: 1', 'time_zone: Europe/Berlin', 'conditions:', '  risky: "risk >= 0.8"', 'rules:'];
  for (let i = 0; i < RULES - ROUTES; i++) {
    const route = `app-${i % ROUTES}`;
    const match = [`routes: [${route}]`, `groups: [g-${i}, team-${i % 7}]`, `paths: ["/api/v${i % 3}/**", "/ui/${i}/*"]`];
    if (i % 4 === 0) match.push(`networks: ["10.${i % 250}.0.0/16", "fd00:${i.toString(16)}::/32"]`);
    if (i % 6 === 0) match.push('time: { days: [mon, tue, wed, thu, fri], hours: "07:00-19:00" }');
    if (i % 9 === 0) match.push('auth_methods: [mtls]', `devices: ["dev-${i}-*"]`);
    lines.push(`  - id: r${i}`, `    match: { ${match.join(', ')} }`);
    if (i % 5 === 0) lines.push(`    when: "conditions.risky || time.hour < 6 || request.path.startsWith('/api/v${i % 3}/admin')"`);
    lines.push(`    action: ${['allow', 'notify', 'block'][i % 3]}`);
  }
  for (let r = 0; r < ROUTES; r++) lines.push(`  - id: last-${r}`, `    match: { routes: [app-${r}], groups: [clinicians] }`, '    action: allow');

  return `${lines.join('\n')}\n`;
}

function measure(policy: CompiledPolicy, contexts: readonly DecisionContext[]): number {
  for (let i = 0; i < WARMUP; i++) policy.decide(contexts[i % contexts.length]!);

  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) policy.decide(contexts[i % contexts.length]!);
  return Number(process.hrtime.bigint() - start) / 1000 / ITERATIONS;
}

/** Measures and prints microseconds per decision; prints the target beside the 500-rule figures, asserts nothing. */
export function runPolicyBench(write: (line: string) => void = console.log): void {
  const demo = compilePolicy(readFileSync(new URL('../../policy/examples/demo.yaml', import.meta.url)), 'demo.yaml', { timeZone: 'Europe/Berlin' });
  const demoContexts = [
    context({ groups: ['physicians', 'clinicians'] }),
    context({ groups: ['records'] }),
    context({ groups: ['records'], path: '/fhir/Observation/1' }),
    context({ groups: ['nurses', 'clinicians'], risk: 0.7 }),
  ];
  const large = compilePolicy(generatePolicy(), 'generated-500.yaml');
  const routeRules = large.ruleIds.filter((id) => id.startsWith('r') && Number(id.slice(1)) % ROUTES === 3).length + 1;
  // Every request passes the route index into the 25 rules of its route and falls
  // through all of them to the route's last rule, the slowest path a route allows.
  const fallThrough = Array.from({ length: ROUTES }, (_, r) => context({ route: `app-${r}`, path: '/api/v1/records', ip: '192.0.2.9' }));
  const mixed = [
    ...fallThrough,
    context({ route: 'app-3', groups: ['g-3'], path: '/api/v0/x' }),
    context({ route: 'app-8', groups: ['team-1'], path: '/ui/8/home', ip: '10.8.4.4' }),
    context({ route: 'app-0', groups: ['g-0'], path: '/api/v0/admin/users', risk: 0.9, ip: '10.0.9.9' }),
  ];

  write(`Policy evaluation, Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} x${os.cpus().length}, load average ${os.loadavg()[0]!.toFixed(1)}, ${ITERATIONS} decisions per figure`);
  write(`demo policy (${demo.ruleIds.length} rules)                         ${measure(demo, demoContexts).toFixed(2).padStart(6)} µs per decision`);
  write(`generated policy (${large.ruleIds.length} rules, ${routeRules} per route), fall-through ${measure(large, fallThrough).toFixed(2).padStart(6)} µs per decision (target < ${TARGET_US} µs)`);
  write(`generated policy (${large.ruleIds.length} rules), mixed requests           ${measure(large, mixed).toFixed(2).padStart(6)} µs per decision (target < ${TARGET_US} µs)`);
}

if (import.meta.url === `file://${process.argv[1]}`) runPolicyBench();
