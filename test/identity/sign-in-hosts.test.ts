import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { createSignInHostCheck } from '../../proxy/identity/sign-in-hosts.ts';
import type { RouteConfig } from '../../proxy/routing/router.ts';

const dir = mkdtempSync(join(tmpdir(), 'wgtest-sign-in-hosts-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
execFileSync('openssl', [
  'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.pem'),
  '-days', '1', '-subj', '/CN=wardgate test', '-addext', 'subjectAltName=DNS:*.ward.example,DNS:Ehr.Example,IP:::1,IP:127.0.0.1',
], { stdio: 'pipe' });
const certificate = readFileSync(join(dir, 'server.pem'), 'utf8');

function route(host: string): RouteConfig {
  return { id: `route-${host}`, host, path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'normal', fail_mode: { redis: 'closed', scorer: 'closed', idp: 'closed' } };
}

t.test('catch-all route allows certificate names', async (t) => {
  const check = createSignInHostCheck([route('*'), route('exact.example')], certificate);
  const cases: [string, boolean][] = [
    ['exact.example', true],
    ['ehr.example', true],
    ['EHR.example', true],
    ['a.ward.example', true],
    ['ward.example', false],
    ['a.b.ward.example', false],
    ['::1', true],
    ['[::1]', true],
    ['0:0:0:0:0:0:0:1', true],
    ['127.0.0.1', true],
    ['evil.example', false],
    ['ehr.example.evil.example', false],
  ];

  for (const [host, expected] of cases) {
    t.equal(check(host), expected, host);
  }
});

t.test('exact routes allow only their hosts', async (t) => {
  const check = createSignInHostCheck([route('exact.example')], certificate);

  t.equal(check('exact.example'), true);
  t.equal(check('ehr.example'), false, 'a certificate name without a catch-all route');
  t.equal(check('127.0.0.1'), false);
});
