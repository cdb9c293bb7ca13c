import t from 'tap';
import { parseConfig } from '../../proxy/config/config.ts';
import { ConfigError } from '../../proxy/config/errors.ts';

const env = { WARDGATE_OIDC_CLIENT_SECRET: 'secret', WARDGATE_PATIENT_KEY: 'ab'.repeat(32) };
const base = `tls: { cert: c.pem, key: k.pem }
oidc: { issuer: "https://idp.example", client_id: wardgate }
policy: policy.yaml
model: model.onnx
routes:
  - { id: ehr, upstream: "http://127.0.0.1:9000" }
`;

t.test('oversight sections are optional', async (t) => {
  const config = parseConfig(base, '/etc/wardgate.yaml', env);
  t.same(config.review, { threshold: 0.7, stream_max_length: 100_000, benign_ttl: 2_592_000, max_entries_per_user_hour: 500 });
  t.same(config.break_glass, { justification_min_length: 20, justification_max_length: 1000, offer_ttl: 900 });
  t.equal(config.notify?.acknowledgement_ttl, 43_200);
});

t.test('oversight sections are read', async (t) => {
  const text = `${base}review: { threshold: 0.55, stream_max_length: 5000, benign_ttl: 86400, max_entries_per_user_hour: 50 }
break_glass: { justification_min_length: 30, justification_max_length: 500, offer_ttl: 300 }
notify: { message: "Access is logged.", acknowledgement_ttl: 3600 }
`;
  const config = parseConfig(text, '/etc/wardgate.yaml', env);
  t.same(config.review, { threshold: 0.55, stream_max_length: 5000, benign_ttl: 86_400, max_entries_per_user_hour: 50 });
  t.same(config.break_glass, { justification_min_length: 30, justification_max_length: 500, offer_ttl: 300 });
  t.same(config.notify, { message: 'Access is logged.', acknowledgement_ttl: 3600 });
});

const badCases: Array<[string, string]> = [
  ['review: { threshold: 1.5 }', '/etc/wardgate.yaml:7:22: review.threshold: expected a number from 0 to 1, got 1.5'],
  ['review: { threshold: high }', '/etc/wardgate.yaml:7:22: review.threshold: expected a number from 0 to 1, got "high"'],
  ['review: { stream_max_length: 10 }', '/etc/wardgate.yaml:7:30: review.stream_max_length: expected an integer from 100 to 10000000, got 10'],
  ['review: { treshold: 0.5 }', '/etc/wardgate.yaml:7:11: review.treshold: unknown option; did you mean "threshold"? (allowed: threshold, stream_max_length, benign_ttl, max_entries_per_user_hour)'],
  ['review: { max_entries_per_user_hour: 0 }', '/etc/wardgate.yaml:7:38: review.max_entries_per_user_hour: expected an integer from 10 to 1000000, got 0'],
  ['break_glass: { justification_min_length: 50, justification_max_length: 40 }', '/etc/wardgate.yaml:7:72: break_glass.justification_max_length: must be at least justification_min_length (50), got 40'],
  ['notify: { message: "Zugriff wird protokolliert – bitte beachten" }', '/etc/wardgate.yaml:7:20: notify.message: must be printable ASCII because it is also sent as an HTTP header'],
  ['notify: []', '/etc/wardgate.yaml:7:9: notify: expected a mapping, got a list'],
];

for (const [section, message] of badCases) {
  t.test(`invalid ${section.split(':')[0]}: ${section.slice(0, 40)}`, async (t) => {
    const error = t.throws(() => parseConfig(`${base}${section}\n`, '/etc/wardgate.yaml', env)) as unknown as ConfigError;
    t.type(error, ConfigError);
    t.equal(error.message, message);
  });
}
