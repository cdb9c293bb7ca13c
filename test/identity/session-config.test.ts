import t from 'tap';

import { parseConfig } from '../../proxy/config/config.ts';
import { ConfigError } from '../../proxy/config/errors.ts';

const ENV = { WARDGATE_OIDC_CLIENT_SECRET: 'test-secret', WARDGATE_PATIENT_KEY: 'a'.repeat(64), WARDGATE_SAVED_REQUEST_KEY: 'b'.repeat(64) };
const BASE = `tls: { cert: c.pem, key: k.pem }
oidc: { issuer: "https://idp.example", client_id: wardgate }
policy: p.yaml
model: m.onnx
routes:
  - { id: ehr, host: ehr.example, path_prefix: /, upstream: "http://127.0.0.1:9000" }
  - { id: pacs, host: pacs.example, path_prefix: /, upstream: "http://127.0.0.1:9001" }
`;

function parse(session: string, env: Record<string, string> = ENV) {
  return parseConfig(`${BASE}session:\n${session}`, 'wardgate.yaml', env);
}

function issues(session: string, env: Record<string, string> = ENV): string {
  try {
    parse(session, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return '';
}

t.test('session keys are read', async (t) => {
  const config = parse(`  idle_timeout: 900
  max_saved_body_bytes: 131072
  claims_refresh_interval: 300
  shared_sign_in:
    sign_in_host: ehr.example
    hosts: [ehr.example, pacs.example]
`);

  t.equal(config.session.max_saved_body_bytes, 131072);
  t.equal(config.session.claims_refresh_interval, 300);
  t.same(config.session.shared_sign_in, { sign_in_host: 'ehr.example', hosts: ['ehr.example', 'pacs.example'] });
  t.same(config.session.saved_request_key, Buffer.from('b'.repeat(64), 'hex'), 'the key comes from WARDGATE_SAVED_REQUEST_KEY');
});

t.test('defaults leave the extras unset', async (t) => {
  const config = parse('  idle_timeout: 900\n', { WARDGATE_OIDC_CLIENT_SECRET: 's', WARDGATE_PATIENT_KEY: 'a'.repeat(64) });
  t.equal(config.session.max_saved_body_bytes, undefined);
  t.equal(config.session.saved_request_key, undefined);
  t.equal(config.session.shared_sign_in, undefined);
});

t.test('bad session keys name line and fix', async (t) => {
  t.match(issues('  max_saved_body_bytes: 2000000\n'), /wardgate\.yaml:9:25: session\.max_saved_body_bytes: expected an integer from 0 to 1048576/);
  t.match(issues('  claims_refresh_interval: 1\n'), /session\.claims_refresh_interval: expected an integer from 10 to 86400/);
  t.match(issues('  idle_timeout: 900\n', { ...ENV, WARDGATE_SAVED_REQUEST_KEY: 'short' }), /WARDGATE_SAVED_REQUEST_KEY must hold exactly 32 bytes as 64 hexadecimal characters; generate one with: openssl rand -hex 32/);
  t.match(issues('  shared_sign_in: { sign_in_host: other.example, hosts: [ehr.example, pacs.example] }\n'), /session\.shared_sign_in\.sign_in_host: expected one of session\.shared_sign_in\.hosts \(ehr\.example, pacs\.example\)/);
  t.match(issues('  shared_sign_in: { sign_in_host: ehr.example, hosts: [ehr.example] }\n'), /expected at least two host names/);
  t.match(issues('  shared_sign_in: { sign_in_host: ehr.example, hosts: [ehr.example, "pacs.example:8443"] }\n'), /session\.shared_sign_in\.hosts\[1\]: expected a lowercase host name without port/);
  t.match(issues('  shared_sign_in: { sign_in_host: ehr.example, hosts: [ehr.example, lab.example] }\n'), /session\.shared_sign_in\.hosts: host "lab\.example" has no route; add a route for it or remove it from the list/);
  t.match(issues('  shared_signin: {}\n'), /session\.shared_signin: unknown option; did you mean "shared_sign_in"\?/);
});
