import t from 'tap';

import { parseConfig } from '../../proxy/config/config.ts';
import { CONFIG_ENV as ENV, MINIMAL_CONFIG as BASE } from './helpers.ts';


t.test('scorer and care sections default when absent', async (t) => {
  const config = parseConfig(BASE, '/etc/wardgate/wardgate.yaml', ENV);
  t.same(config.scorer, { batch_max: 32, batch_wait_us: 200, deadline_ms: 200, reload_poll_ms: 1000, unexplained_floor: { scale: 1.25, usual_limit: 0.125, max: 0.85 }, patient_paths: [] });
  t.same(config.care, { source: 'none', ttl: 300, request_timeout_ms: 2000, search_timeout_ms: 5000 });
});

t.test('scorer and care sections are read', async (t) => {
  const text = `${BASE}scorer: { batch_max: 8, batch_wait_us: 0, deadline_ms: 20, reload_poll_ms: 0, unexplained_floor: { scale: 2, usual_limit: 0, max: 0.95 }, patient_paths: ['/patients/{id}', '/pacs/viewer/{id}/series'] }\ncare: { source: panel, panel_file: panel.yaml, ttl: 60, request_timeout_ms: 500, search_timeout_ms: 1500 }\n`;
  const config = parseConfig(text, '/etc/wardgate/wardgate.yaml', ENV);
  t.same(config.scorer, {
    batch_max: 8,
    batch_wait_us: 0,
    deadline_ms: 20,
    reload_poll_ms: 0,
    unexplained_floor: { scale: 2, usual_limit: 0, max: 0.95 },
    patient_paths: ['/patients/{id}', '/pacs/viewer/{id}/series'],
  });
  t.same(config.care, { source: 'panel', panel_file: '/etc/wardgate/panel.yaml', ttl: 60, request_timeout_ms: 500, search_timeout_ms: 1500 });
});

const invalid: [string, RegExp][] = [
  ['scorer: { batch_max: 0 }', /:\d+:\d+: scorer\.batch_max: expected an integer from 1 to 4096, got 0/],
  ['scorer: { deadline: 50 }', /scorer\.deadline: unknown option \(allowed: batch_max, batch_wait_us, deadline_ms, reload_poll_ms, unexplained_floor, patient_paths\)/],
  ['scorer: { unexplained_floor: { scale: 0 } }', /scorer\.unexplained_floor\.scale: expected a number from 0\.01 to 100, got 0/],
  ['scorer: { unexplained_floor: { usual_limit: 1.5 } }', /scorer\.unexplained_floor\.usual_limit: expected a number from 0 to 1, got 1\.5/],
  ['scorer: { unexplained_floor: { usual_limit: .nan } }', /scorer\.unexplained_floor\.usual_limit: expected a number from 0 to 1/],
  ['scorer: { unexplained_floor: { limit: 0.2 } }', /scorer\.unexplained_floor\.limit: unknown option \(allowed: scale, usual_limit, max\)/],
  ['scorer: { unexplained_floor: 0.2 }', /scorer\.unexplained_floor/],
  ['scorer: { unexplained_floor: { max: -0.1 } }', /scorer\.unexplained_floor\.max: expected a number from 0 to 1, got -0\.1/],
  ['care: { source: ldap }', /care\.source: expected one of none, panel, fhir, got "ldap"/],
  ['care: { source: panel }', /care\.panel_file: missing; care\.source "panel" needs the path of a panel file/],
  ['care: { source: fhir }', /care\.fhir_base: missing; care\.source "fhir" needs the FHIR base URL/],
  ['care: { source: fhir, fhir_base: "ftp://x/fhir" }', /care\.fhir_base: expected an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x\/fhir"/],
  ['care: { source: fhir, fhir_base: "http://x/fhir", ttl: 0 }', /care\.ttl: expected an integer from 1 to 86400, got 0/],
  ['care: { source: fhir, fhir_base: "http://x/fhir", search_timeout_ms: 0 }', /care\.search_timeout_ms: expected an integer from 1 to 120000, got 0/],
  ['care: { source: fhir, fhir_base: "http://x/fhir", request_timeout_ms: "2s" }', /care\.request_timeout_ms: expected an integer from 1 to 60000/],
];

for (const [section, message] of invalid) {
  t.test(`config rejects ${section}`, async (t) => {
    t.throws(() => parseConfig(`${BASE}${section}\n`, '/etc/wardgate/wardgate.yaml', ENV), { code: 'WG_CONFIG_INVALID', message });
  });
}

/** Each invalid template and the whole message line it gets, after `file:line:column: `. */
const invalidTemplates: [string, string][] = [
  ['/patients', 'scorer.patient_paths[0]: expected exactly one {id} segment, got 0 in "/patients"; write it like "/patients/{id}"'],
  ['/patients/{id}/{id}', 'scorer.patient_paths[0]: expected exactly one {id} segment, got 2 in "/patients/{id}/{id}"; write it like "/patients/{id}"'],
  ['patients/{id}', 'scorer.patient_paths[0]: expected an absolute path starting with "/", got "patients/{id}"; write it like "/patients/{id}"'],
  ['/patients/{id}?tab=notes', 'scorer.patient_paths[0]: expected a path without a query, got "/patients/{id}?tab=notes"; remove "?" and what follows, because templates match the path only'],
  ['/patients//{id}', 'scorer.patient_paths[0]: expected no empty segments, got "/patients//{id}"; remove the doubled or trailing "/"'],
  ['/patients/{id}/', 'scorer.patient_paths[0]: expected no empty segments, got "/patients/{id}/"; remove the doubled or trailing "/"'],
  ['/{id}', 'scorer.patient_paths[0]: expected a literal segment before {id}, got "/{id}"; a first segment {id} would make the first segment of every path a patient id'],
];

for (const [template, line] of invalidTemplates) {
  t.test(`config rejects patient path ${template}`, async (t) => {
    const text = `${BASE}scorer:\n  patient_paths:\n    - ${JSON.stringify(template)}\n`;
    // BASE takes lines 1 to 7, so the template's list item is on line 10.
    t.throws(() => parseConfig(text, '/etc/wardgate/wardgate.yaml', ENV), { code: 'WG_CONFIG_INVALID', message: `/etc/wardgate/wardgate.yaml:10:7: ${line}` });
  });
}

t.test('config reports each invalid patient path', async (t) => {
  const text = `${BASE}scorer:\n  patient_paths:\n    - /patients/{id}\n    - /ward\n    - 42\n`;

  t.throws(() => parseConfig(text, '/etc/wardgate/wardgate.yaml', ENV), {
    code: 'WG_CONFIG_INVALID',
    message: [
      '/etc/wardgate/wardgate.yaml:11:7: scorer.patient_paths[1]: expected exactly one {id} segment, got 0 in "/ward"; write it like "/patients/{id}"',
      '/etc/wardgate/wardgate.yaml:12:7: scorer.patient_paths[2]: expected a non-empty string, got 42',
    ].join('\n'),
  });
  t.throws(() => parseConfig(`${BASE}scorer: { patient_paths: '/patients/{id}' }\n`, '/etc/wardgate/wardgate.yaml', ENV), {
    message: /scorer\.patient_paths: expected a list, got "\/patients\/\{id\}"/,
  });
});

t.test('an unquoted template in a flow list gets a hint', async (t) => {
  t.throws(() => parseConfig(`${BASE}scorer:\n  patient_paths: [/patients/{id}]\n`, '/etc/wardgate/wardgate.yaml', ENV), {
    code: 'WG_CONFIG_INVALID',
    message:
      `/etc/wardgate/wardgate.yaml:9:29: (yaml): Missing , or : between flow sequence items; quote each value that holds { or } inside [ ], such as ['/patients/{id}'], or write one "- value" line per item`,
  });
  t.throws(() => parseConfig(`${BASE}scorer:\n  patient_paths: [/patients/{id}, /ward/{id}]\n`, '/etc/wardgate/wardgate.yaml', ENV), {
    message: /^[^\n]*quote each value[^\n]*\n[^\n]*Missing , or : between flow sequence items$/,
  }, 'the hint is given once');
  t.throws(() => parseConfig(`${BASE}scorer: { batch_max: 8 routes: [] }\n`, '/etc/wardgate/wardgate.yaml', ENV), {
    message: /^(?!.*quote each value).*\(yaml\)/s,
  }, 'other YAML errors get no hint');
});

t.test('config limits patient paths to 32', async (t) => {
  const list = (count: number) => `[${Array.from({ length: count }, (_, index) => `'/t${index}/{id}'`).join(', ')}]`;

  t.equal(parseConfig(`${BASE}scorer: { patient_paths: ${list(32)} }\n`, '/etc/wardgate/wardgate.yaml', ENV).scorer?.patient_paths.length, 32);
  t.throws(() => parseConfig(`${BASE}scorer: { patient_paths: ${list(33)} }\n`, '/etc/wardgate/wardgate.yaml', ENV), {
    code: 'WG_CONFIG_INVALID',
    message: '/etc/wardgate/wardgate.yaml:8:26: scorer.patient_paths: expected at most 32 templates, got 33; merge templates or remove unused ones',
  });
});
