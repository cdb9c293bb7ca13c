import t from 'tap';

import { parseConfig } from '../../proxy/config/config.ts';

const ENV = { WARDGATE_OIDC_CLIENT_SECRET: 'secret', WARDGATE_PATIENT_KEY: 'ab'.repeat(32) };
const BASE = `tls: { cert: server.pem, key: server.key }
oidc: { issuer: "https://idp.localhost", client_id: wardgate }
policy: policy.yaml
model: model.onnx
routes:
  - { id: ehr, host: ehr.localhost, upstream: "http://127.0.0.1:9000" }
`;

t.test('shadow_policy and policy_signing read', async (t) => {
  const config = parseConfig(`${BASE}shadow_policy: candidate.yaml
policy_signing:
  required: true
  ed25519_public_key: keys/policy-ed25519.pub
  ml_dsa_65_public_key: keys/policy-ml-dsa-65.pub
`, '/etc/wardgate/wardgate.yaml', ENV);

  t.equal(config.shadow_policy, '/etc/wardgate/candidate.yaml');
  t.same(config.policy_signing, { required: true, ed25519_public_key: '/etc/wardgate/keys/policy-ed25519.pub', ml_dsa_65_public_key: '/etc/wardgate/keys/policy-ml-dsa-65.pub' });
});

t.test('keys absent leave the options out', async (t) => {
  const config = parseConfig(BASE, '/etc/wardgate/wardgate.yaml', ENV);

  t.equal(config.shadow_policy, undefined);
  t.equal(config.policy_signing, undefined);
});

t.test('required signing without keys rejected', async (t) => {
  t.throws(() => parseConfig(`${BASE}policy_signing: { required: true, ed25519_key: x }\n`, 'wardgate.yaml', ENV), {
    message: /policy_signing\.ed25519_key.*unknown option[\s\S]*policy_signing\.ed25519_public_key: expected the Ed25519 public key file because policy_signing\.required is true[\s\S]*policy_signing\.ml_dsa_65_public_key: expected the ML-DSA-65 public key file/,
  });
});
