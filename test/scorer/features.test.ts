import t from 'tap';

import type { PeerBaseline, RawBaseline, SubjectBaseline } from '../../scorer/baselines/store.ts';
import { buildFeatureVector, namedFeatures, NO_PATIENT_CARE_FACTS, type CareFacts, type FeatureContext } from '../../scorer/features/extract.ts';
import { FEATURE_SCHEMA, type FeatureName } from '../../scorer/features/schema.ts';
import type { ScoreInput } from '../../scorer/types.ts';
import { MONDAY, request } from './helpers.ts';

const HOUR = 3_600_000;

/** A settled user: 7 days of history, familiar network and device, a quiet current hour. */
const USER: SubjectBaseline = Object.freeze({
  requests: 1000,
  activeMinutes: 500,
  activeHours: 60,
  activeDays: 7,
  patientHours: 300,
  patientDays: 140,
  hourOfWeekMinutes: 30,
  hourOfWeekTotal: 500,
  historyDays: 7,
  networkRequests: 900,
  networkCount: 1,
  deviceRequests: 900,
  deviceCount: 1,
  minuteRequests: 2,
  hourPatients: 5,
  dayPatients: 20,
  exportsDay: 0,
  outsideCareHour: 0,
  flaggedHour: 0,
  hourMinutes: 5,
  responsesHour: 10,
  deniedHour: 0,
  bytesHour: 50_000,
  responseBytes: 3_000_000,
  responseHours: 60,
  routePatientRequests: 400,
  routePatientTotal: 400,
  newPatients: 0,
  newPatientsHour: 1,
  newPatientsTotal: 120,
  patientAccesses: 400,
  notAdmittedAccesses: 4,
  unexplainedPatients: 0,
  unexplainedHour: 0,
  unexplainedTotal: 6,
  patientAccessesHour: 5,
});

const PEER: PeerBaseline = Object.freeze({
  requests: 10_000,
  activeMinutes: 5000,
  activeHours: 600,
  activeDays: 70,
  patientHours: 3000,
  patientDays: 1400,
  hourOfWeekMinutes: 300,
  hourOfWeekTotal: 5000,
  networkRequests: 9000,
  hourMinutes: 20,
  patientAccesses: 20_000,
  unexplained: 200,
});

function features(
  input: Partial<ScoreInput> = {},
  user: Partial<SubjectBaseline> = {},
  peer: Partial<PeerBaseline> = {},
  context: Partial<Omit<FeatureContext, 'care'>> & { care?: Partial<CareFacts> } = {},
): Readonly<Record<FeatureName, number>> {
  const raw: RawBaseline = { user: { ...USER, ...user }, peer: { ...PEER, ...peer } };
  const vector = buildFeatureVector(request({ time: MONDAY + 9 * HOUR, ...input }), raw, {
    patientCount: context.patientCount ?? 1,
    utcOffsetMinutes: context.utcOffsetMinutes ?? 0,
    care: { ...NO_PATIENT_CARE_FACTS, ...context.care },
  });

  return namedFeatures(vector) as Readonly<Record<FeatureName, number>>;
}

const base = features();

t.test('schema is versioned and complete', async (t) => {
  t.equal(FEATURE_SCHEMA.version, 'wardgate-features-v4');
  t.ok(FEATURE_SCHEMA.names.length >= 15, `${FEATURE_SCHEMA.names.length} features`);
  t.equal(new Set(FEATURE_SCHEMA.names).size, FEATURE_SCHEMA.names.length, 'names are unique');
  t.same(Object.keys(base), [...FEATURE_SCHEMA.names]);
});

t.test('each feature responds to its own signal', async (t) => {
  const cases: [FeatureName, Readonly<Record<FeatureName, number>>, 'up' | 'down'][] = [
    ['request_rate_ratio', features({}, { minuteRequests: 40 }), 'up'],
    ['requests_this_minute', features({}, { minuteRequests: 40 }), 'up'],
    ['hour_of_week_rarity', features({}, { hourOfWeekMinutes: 5 }, { hourOfWeekMinutes: 20 }), 'up'],
    ['peer_hour_rarity', features({}, {}, { hourOfWeekMinutes: 20 }), 'up'],
    ['network_new_for_user', features({}, { networkRequests: 0 }), 'up'],
    ['network_new_for_peers', features({}, {}, { networkRequests: 0 }), 'up'],
    ['device_new_for_user', features({}, { deviceRequests: 0 }), 'up'],
    ['patients_hour', features({}, { hourPatients: 60 }), 'up'],
    ['patients_hour_ratio', features({}, { hourPatients: 60 }), 'up'],
    ['patients_day', features({}, { dayPatients: 200 }), 'up'],
    ['patients_day_ratio', features({}, { dayPatients: 200 }), 'up'],
    ['outside_care_share', features({}, {}, {}, { care: { outsideCare: 1 } }), 'up'],
    ['outside_care_hour', features({}, { outsideCareHour: 12 }), 'up'],
    ['care_unknown', features({}, {}, {}, { care: { unknown: true } }), 'up'],
    ['patient_flagged', features({}, {}, {}, { care: { vip: true } }), 'up'],
    ['flagged_patients_hour', features({}, { flaggedHour: 3 }), 'up'],
    ['bulk_export', features({ path: '/fhir/Patient/p1/$everything' }), 'up'],
    ['exports_day', features({}, { exportsDay: 5 }), 'up'],
    ['bulk_export_outside_care', features({ path: '/fhir/Patient/p1/$everything' }, {}, {}, { care: { outsideCare: 1 } }), 'up'],
    ['bytes_hour_ratio', features({}, { bytesHour: 5_000_000 }), 'up'],
    ['denied_hour', features({}, { deniedHour: 8 }), 'up'],
    ['denied_share_hour', features({}, { deniedHour: 8 }), 'up'],
    ['route_sensitivity', features({ sensitivity: 'low' }), 'down'],
    ['night_time', features({ time: MONDAY + 3 * HOUR }), 'up'],
    ['session_age', features({ sessionAgeSeconds: 8 * 3600 }), 'up'],
    ['warm_up', features({}, { historyDays: 2 }), 'down'],
    ['patient_access', features({}, {}, {}, { patientCount: 6 }), 'up'],
    ['write_method', features({ method: 'POST' }), 'up'],
    ['flagged_without_care', features({}, {}, {}, { care: { flaggedWithoutCare: 1 } }), 'up'],
    ['anomaly_score', features({}, { minuteRequests: 40 }), 'up'],
    ['route_patient_rarity', features({}, { routePatientRequests: 20 }), 'up'],
    ['patient_new_for_user', features({}, { newPatients: 1 }), 'up'],
    ['new_patients_hour_ratio', features({}, { newPatientsHour: 30 }), 'up'],
    ['patient_not_admitted', features({}, {}, {}, { care: { notAdmitted: 1 } }), 'up'],
    ['not_admitted_unusual', features({}, {}, {}, { care: { notAdmitted: 1 } }), 'up'],
    ['census_unknown', features({}, {}, {}, { care: { censusUnknown: true } }), 'up'],
    ['unexplained_access', features({}, { unexplainedPatients: 1 }), 'up'],
    ['unexplained_hour_ratio', features({}, { unexplainedHour: 4 }), 'up'],
    ['unexplained_usual', features({}, { unexplainedTotal: 200 }), 'up'],
  ];

  t.same(cases.map(([name]) => name).sort(), [...FEATURE_SCHEMA.names].sort(), 'every feature has a case');
  for (const [name, changed, direction] of cases) {
    if (direction === 'up') t.ok(changed[name] > base[name], `${name}: ${base[name]} -> ${changed[name]} rises`);
    else t.ok(changed[name] < base[name], `${name}: ${base[name]} -> ${changed[name]} falls`);
  }
});

t.test('feature values follow their definitions', async (t) => {
  t.equal(base.requests_this_minute, Math.fround(Math.log2(3)));
  t.equal(base.network_new_for_user, 0, 'familiar network');
  t.equal(features({}, { networkRequests: 25 }).network_new_for_user, 0.5, 'half familiar after 25 of 50 requests');
  t.equal(features({}, {}, {}, { patientCount: 4, care: { outsideCare: 1 } }).outside_care_share, 0.25);
  t.equal(features({}, {}, {}, { patientCount: 0 }).outside_care_share, 0, 'no patient, no share');
  t.equal(features({}, { deniedHour: 3, responsesHour: 5 }).denied_share_hour, 0.5);
  t.equal(features({}, { responseHours: 3, bytesHour: 5_000_000 }).bytes_hour_ratio, 0, 'bytes need a baseline of 8 hours');
  t.equal(base.session_age, 0, 'no session age for bearer callers');
  t.equal(base.warm_up, 1);
  t.equal(features({}, { historyDays: 0 }).warm_up, 0);
  t.equal(features({ time: MONDAY + 21 * HOUR }, {}, {}, { utcOffsetMinutes: 120 }).night_time, 1, '23:00 local');
  t.equal(features({}, {}, {}, { care: { flaggedWithoutCare: 1 } }).flagged_without_care, 1, 'log2(1 + 1)');
});

t.test('patient history, route and census features follow their definitions', async (t) => {
  t.equal(base.route_patient_rarity, 0, 'every earlier patient request used this route');
  t.equal(features({}, { routePatientRequests: 100, routePatientTotal: 400 }).route_patient_rarity, 0.75, 'a quarter of the patient requests used it');
  t.equal(features({}, { routePatientRequests: 0, routePatientTotal: 0 }).route_patient_rarity, 0, 'no history is no evidence');
  t.equal(features({}, { routePatientRequests: 0, routePatientTotal: 10 }).route_patient_rarity, Math.fround(0.2), 'a thin history counts for less: (1 - 0) * 10 / 50');
  t.equal(features({}, { routePatientRequests: 0 }, {}, { patientCount: 0 }).route_patient_rarity, 0, 'no patient, no rarity');

  t.equal(features({}, { newPatients: 1 }, {}, { patientCount: 2 }).patient_new_for_user, 0.5, 'one of two patients is new');
  t.equal(features({}, { newPatientsHour: 3, newPatientsTotal: 60 }).new_patients_hour_ratio, 1, 'log2((3 + 1) / (60 / 60 + 1))');

  const discharged = features({}, {}, {}, { care: { notAdmitted: 1 } });
  t.equal(discharged.patient_not_admitted, 1);
  t.equal(discharged.not_admitted_unusual, Math.fround(1 - 4 / 400), 'a user who rarely opens discharged patients');
  t.equal(features({}, { patientAccesses: 10, notAdmittedAccesses: 0 }, {}, { care: { notAdmitted: 1 } }).not_admitted_unusual, Math.fround(0.2), 'a thin history counts for less');
  const billing = features({}, { notAdmittedAccesses: 360 }, {}, { care: { notAdmitted: 1 } });
  t.equal(billing.not_admitted_unusual, Math.fround(1 - 360 / 400), 'a user who mostly opens discharged patients');
  const unknown = features({}, {}, {}, { care: { censusUnknown: true } });
  t.equal(unknown.census_unknown, 1);
  t.equal(unknown.patient_not_admitted, 0, 'unknown is not "not admitted"');

  t.equal(features({}, { unexplainedPatients: 1 }, {}, { patientCount: 2 }).unexplained_access, 0.5);
  t.equal(features({}, { unexplainedHour: 3, unexplainedTotal: 63, activeHours: 61 }).unexplained_hour_ratio, 1, 'log2((3 + 1) / (60 / 60 + 1)), the current hour left out');
  t.equal(features({}, { unexplainedHour: 7, unexplainedTotal: 7, activeHours: 1 }).unexplained_hour_ratio, 3, 'a first hour is compared with no history: log2(8)');
  t.equal(features({}, { unexplainedHour: 2, unexplainedTotal: 18, activeHours: 3 }).unexplained_hour_ratio, 0, 'a thin history spreads over 8 hours: log2(3 / (16 / 8 + 1))');
  t.equal(features({}, { unexplainedHour: 20, unexplainedTotal: 60, patientAccesses: 420, patientAccessesHour: 20 }).unexplained_usual, Math.fround(0.1), 'the share before this hour: 40 of 400');
  t.equal(features({}, { historyDays: 0, unexplainedHour: 20, unexplainedTotal: 20, patientAccessesHour: 20 }).unexplained_usual, Math.fround(0.01), 'a new user takes the peer share, 200 of 20000');
  t.equal(features({}, { unexplainedHour: 3, unexplainedTotal: 0, patientAccesses: 0 }).unexplained_usual, 0, 'decay can leave the counters below the hour; the share stays in range');
});

t.test('anomaly score is capped and unsupervised', async (t) => {
  t.equal(base.anomaly_score, 0, 'an ordinary request scores 0');
  t.equal(features({}, { minuteRequests: 400 }).anomaly_score, 1, 'a rate far above the baseline reaches the cap');
  t.equal(features({}, { deniedHour: 3 }).anomaly_score, 0.5, 'log2(1 + 3) denied of scale 4');
  const newNetworkAtUsualHour = features({}, { networkRequests: 0 });
  const newNetworkAtRareHour = features({}, { networkRequests: 0, hourOfWeekMinutes: 0 });
  t.equal(newNetworkAtUsualHour.anomaly_score, 0, 'a new network at a usual hour is not anomalous alone');
  t.ok(newNetworkAtRareHour.anomaly_score > 0, 'a new network at a rare hour is');
});

t.test('unknown care relationship differs from not in care', async (t) => {
  const unknown = features({}, {}, {}, { care: { unknown: true } });
  const outside = features({}, {}, {}, { care: { outsideCare: 1 } });
  const inCare = features();

  t.equal(unknown.care_unknown, 1);
  t.equal(unknown.outside_care_share, 0);
  t.equal(outside.care_unknown, 0);
  t.equal(outside.outside_care_share, 1);
  t.equal(inCare.care_unknown, 0);
  t.equal(inCare.outside_care_share, 0);
});
