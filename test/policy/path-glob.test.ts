import t from 'tap';

import { compilePolicy } from '../../policy/index.ts';
import { compileDeviceGlob, compilePathGlob } from '../../policy/engine/path-glob.ts';
import { makeContext } from './helpers.ts';

// A backtracking regular expression runs for seconds or far longer on each hostile case
// below, so a regression shows up as tap's per-file timeout rather than a failed assert.

const DEEP_PATH = `/fhir/${Array.from({ length: 300 }, () => 'a').join('/')}`;

t.test('path glob wildcards', async (t) => {
  const cases: [string, string, boolean][] = [
    ['/fhir/Patient/*/$everything', '/fhir/Patient/123/$everything', true],
    ['/fhir/Patient/*/$everything', '/fhir/Patient/1/2/$everything', false],
    ['/fhir/**/$everything', '/fhir/$everything', true],
    ['/fhir/**/$everything', '/fhir/Patient/1/$everything', true],
    ['/fhir/**/$everything', '/fhirx/$everything', false],
    ['/fhir/**', '/fhir/', true],
    ['/fhir/**', '/fhir/Patient/1', true],
    ['/fhir/**', '/fhir', false],
    ['/fhir/Pat**', '/fhir/Patient/1', true],
    ['/fhir/*.json', '/fhir/a.json', true],
    ['/fhir/*.json', '/fhir/a/b.json', false],
    ['/fhir/a.b', '/fhir/aXb', false],
    ['/fhir/**/**/x', '/fhir/x', true],
    ['/fhir/**/*', '/fhir/a/b/c', true],
  ];

  for (const [glob, path, expected] of cases) {
    t.equal(compilePathGlob(glob).matches(path), expected, `${glob} against ${path}`);
  }
});

t.test('repeated ** on a deep path', async (t) => {
  const glob = compilePathGlob('/fhir/**/**/**/**/**/**/$everything');

  t.equal(glob.matches(DEEP_PATH), false);
  t.equal(glob.matches(`${DEEP_PATH}/$everything`), true);
});

t.test('repeated * in one segment', async (t) => {
  const segment = 'a'.repeat(5000);
  const glob = compilePathGlob('/fhir/*a*a*a*a*a*a*a*b');

  t.equal(glob.matches(`/fhir/${segment}`), false);
  t.equal(glob.matches(`/fhir/${segment}b`), true);
});

t.test('repeated ** inside segments', async (t) => {
  const glob = compilePathGlob('/fhir/a**a**a**a**a**a**a**b');

  t.equal(glob.matches(`/fhir/${'a/'.repeat(3000)}`), false);
  t.equal(glob.matches(`/fhir/${'a/'.repeat(3000)}b`), true);
});

t.test('repeated * in a device pattern', async (t) => {
  const glob = compileDeviceGlob('*a*a*a*a*a*a*a*b');

  t.equal(glob.matches('a'.repeat(5000)), false);
  t.equal(glob.matches(`${'a'.repeat(5000)}b`), true);
});

t.test('hostile paths glob in a policy', async (t) => {
  const policy = compilePolicy(
    `version: 1
rules:
  - id: everything
    match: { paths: ["/fhir/**/**/**/**/$everything", "/fhir/**/**/**/**/**/**/_history"] }
    action: block
  - id: rest
    action: allow
`,
    'hostile-glob.yaml',
  );

  t.equal(policy.decide(makeContext({ request: { path: DEEP_PATH } })).rule, 'rest');
  t.equal(policy.decide(makeContext({ request: { path: `${DEEP_PATH}/$everything` } })).rule, 'everything');
  t.equal(policy.decide(makeContext({ request: { path: `${DEEP_PATH}/_history` } })).rule, 'everything');
});
