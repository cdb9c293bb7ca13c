import t, { type Test } from 'tap';

import { MemoryBaselineStore } from '../../scorer/baselines/memory-store.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { FEATURE_SCHEMA } from '../../scorer/features/schema.ts';
import { createScorer, unexplainedAccessFloor, type BaselineUpdate, type Scorer } from '../../scorer/scorer.ts';
import type { ScoreInput } from '../../scorer/types.ts';
import { MONDAY, request } from './helpers.ts';

const MODEL_PATH = new URL('../../scorer/models/risk-v4.onnx', import.meta.url).pathname;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const WARD = Array.from({ length: 20 }, (_, i) => `w1-${i}`);

/** An ordinary physician day: worklist, then 12 ward patients with their observations. */
function physicianDay(day: number): ScoreInput[] {
  const requests: ScoreInput[] = [];
  let time = MONDAY + day * DAY + 7.5 * HOUR;

  for (let visit = 0; visit < 12; visit += 1) {
    const patient = WARD[(visit * 7 + day * 3) % WARD.length];
    requests.push(request({ time, path: '/fhir/Encounter?location=w1&status=in-progress' }));
    requests.push(request({ time: time + 20_000, path: `/fhir/Patient/${patient}` }));
    requests.push(request({ time: time + 45_000, path: `/fhir/Observation?patient=${patient}&category=vital-signs` }));
    requests.push(request({ time: time + 70_000, path: `/fhir/Observation?patient=${patient}&category=laboratory` }));
    time += 30 * 60_000;
  }

  return requests;
}

/** A stolen account at 03:00 from an unknown network: 40 distinct patients in a few minutes. */
function stolenAccountBurst(day: number): ScoreInput[] {
  const requests: ScoreInput[] = [];
  const start = MONDAY + day * DAY + 3 * HOUR;

  for (let i = 0; i < 40; i += 1) {
    const time = start + i * 6_000;
    requests.push(request({ time, ip: '203.0.113.66', userAgent: 'curl/8.5.0', path: `/fhir/Patient/archive-${i}` }));
    requests.push(request({ time: time + 2_000, ip: '203.0.113.66', userAgent: 'curl/8.5.0', path: `/fhir/Observation?patient=archive-${i}` }));
  }

  return requests;
}

async function scoreAll(scorer: Scorer, inputs: ScoreInput[]): Promise<number[]> {
  const risks: number[] = [];
  for (const input of inputs) {
    risks.push((await scorer.score(input)).risk);
  }

  return risks;
}

t.test('shipped model separates a normal day from a stolen account', async (t) => {
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());

  for (let day = 0; day < 8; day += 1) {
    await scoreAll(scorer, physicianDay(day));
  }
  const ordinary = await scoreAll(scorer, physicianDay(8));
  const burst = await scoreAll(scorer, stolenAccountBurst(9));
  const burstSorted = [...burst].sort((a, b) => a - b);

  t.ok(Math.max(...ordinary) < 0.3, `ordinary day stays low (max ${Math.max(...ordinary).toFixed(3)})`);
  t.ok(burstSorted[Math.floor(burst.length / 2)]! > 0.9, `burst median is high (${burstSorted[Math.floor(burst.length / 2)]!.toFixed(3)})`);
  t.ok(Math.max(...burst) > 0.99, `burst reaches near 1 (${Math.max(...burst).toFixed(3)})`);
});

t.test('score result names features and top contributions', async (t) => {
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());

  const result = await scorer.score(request({ time: MONDAY + 3 * HOUR, path: '/fhir/Patient/1/$everything' }));

  t.same(Object.keys(result.features), [...FEATURE_SCHEMA.names]);
  t.equal(result.features.bulk_export, 1);
  t.equal(result.features.night_time, 1);
  t.equal(result.features.patient_access, 1);
  t.equal(result.features.network_new_for_user, 1);
  t.equal(result.top.length, 3);
  t.ok(result.top[0]!.contribution >= result.top[1]!.contribution && result.top[1]!.contribution >= result.top[2]!.contribution, 'top is sorted');
  t.ok(result.risk >= 0 && result.risk <= 1, 'risk in [0, 1]');
  t.equal(result.modelVersion, scorer.modelVersion);
  t.match(result.modelVersion, /^risk-v4@sha256:/);
});

t.test('night time follows the configured UTC offset', async (t) => {
  const scorer = await createScorer({
    store: new MemoryBaselineStore(),
    modelPath: MODEL_PATH,
    patientKey: Buffer.alloc(32, 3),
    utcOffsetMinutes: 120,
  });
  t.teardown(() => scorer.close());

  const at2100Utc = await scorer.score(request({ time: MONDAY + 21 * HOUR }));
  const at1900Utc = await scorer.score(request({ time: MONDAY + 19 * HOUR }));

  t.equal(at2100Utc.features.night_time, 1, '23:00 local');
  t.equal(at1900Utc.features.night_time, 0, '21:00 local');
});

t.test('scorer options are checked at start-up', async (t) => {
  const store = new MemoryBaselineStore();

  await t.rejects(createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(8) }), {
    code: 'WG_SCORER_INVALID_OPTION',
    detail: { option: 'patientKey' },
  });
  await t.rejects(createScorer({ store, modelPath: '', patientKey: Buffer.alloc(32) }), { code: 'WG_SCORER_INVALID_OPTION', detail: { option: 'modelPath' } });
  await t.rejects(createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32), utcOffsetMinutes: 1.5 }), {
    code: 'WG_SCORER_INVALID_OPTION',
    detail: { option: 'utcOffsetMinutes' },
  });
  await t.rejects(createScorer({ store: {} as never, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32) }), {
    code: 'WG_SCORER_INVALID_OPTION',
    detail: { option: 'store' },
  });
  await t.rejects(createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32), unexplainedFloor: { scale: 0, usualLimit: 0.1, max: 0.85 } }), {
    code: 'WG_SCORER_INVALID_OPTION',
    detail: { option: 'unexplainedFloor.scale' },
  });
  await t.rejects(createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32), unexplainedFloor: { scale: 1, usualLimit: Number.NaN, max: 0.85 } }), {
    code: 'WG_SCORER_INVALID_OPTION',
    detail: { option: 'unexplainedFloor.usualLimit' },
  });
  await t.rejects(createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32), unexplainedFloor: { scale: 1, usualLimit: 0.1, max: 2 } }), {
    code: 'WG_SCORER_INVALID_OPTION',
    detail: { option: 'unexplainedFloor.max' },
  });
  await t.rejects(createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32), patientPaths: ['/patients'] }), {
    code: 'WG_SCORER_INVALID_OPTION',
    message: 'Invalid option patientPaths[0]: expected exactly one {id} segment, got 0 in "/patients"; write it like "/patients/{id}".',
    detail: { option: 'patientPaths[0]' },
  });
});

t.test('unexplained-access floor values', async (t) => {
  const unexplained = (patientsThisHour: number, usual: number) => ({
    unexplained_access: 1,
    unexplained_hour_ratio: Math.log2(patientsThisHour + 1),
    unexplained_usual: usual,
  });

  t.equal(unexplainedAccessFloor(unexplained(1, 0)), 0.8, 'first unexplained patient: a step-up');
  t.equal(unexplainedAccessFloor(unexplained(2, 0)), 0.85, 'second one: at most 0.85, a step-up');
  t.equal(unexplainedAccessFloor(unexplained(2, 0), { scale: 1.25, usualLimit: 0.125, max: 1 }), 1, 'reaches 1 with max 1');
  t.ok(Math.abs(unexplainedAccessFloor(unexplained(1, 0.0625)) - 0.4) < 1e-12, 'half the usual limit halves it');
  t.equal(unexplainedAccessFloor(unexplained(5, 0.125)), 0, 'faded out at the usual limit');
  t.equal(unexplainedAccessFloor({ ...unexplained(5, 0), unexplained_access: 0 }), 0, 'explained access');
  t.equal(unexplainedAccessFloor(unexplained(1, 0), { scale: 2, usualLimit: 0.125, max: 0.85 }), 0.5, 'a larger scale lowers it');
  t.equal(unexplainedAccessFloor(unexplained(5, 0), { scale: 1.25, usualLimit: 0, max: 0.85 }), 0, 'usual limit 0 turns it off');
});

t.test('configured floor changes the risk', async (t) => {
  const store = new MemoryBaselineStore();
  const off = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3), unexplainedFloor: { scale: 1.25, usualLimit: 0, max: 0.85 } });
  const on = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(async () => {
    await off.close();
    await on.close();
  });

  // A week of work on one patient, whom the user's history explains after the first request,
  // makes unexplained patients rare for this user.
  const DAY = 86_400_000;
  for (let day = 0; day < 8; day += 1) {
    for (let minute = 0; minute < 10; minute += 1) {
      const input = request({ time: MONDAY + day * DAY + 9 * 3_600_000 + minute * 60_000, path: '/fhir/Patient/p-0' });
      await on.score(input);
      on.recordShown!(input);
      await off.score(input);
      off.recordShown!(input);
    }
  }
  let withFloor = 0;
  let withoutFloor = 0;
  for (const [index, patient] of ['p-1', 'p-2', 'p-3'].entries()) {
    const input = request({ time: MONDAY + 8 * DAY + 10 * 3_600_000 + index * 60_000, path: `/fhir/Patient/${patient}` });
    withFloor = (await on.score(input)).risk;
    withoutFloor = (await off.score(input)).risk;
  }
  t.ok(withFloor >= 0.6, `the default floor flags the third unexplained patient (${withFloor.toFixed(3)})`);
  t.ok(withoutFloor < 0.6, `without the floor the model alone lets it pass (${withoutFloor.toFixed(3)})`);
});

t.test('store failures surface as store unavailable', async (t) => {
  const failing = {
    observe: async () => {
      throw new Error('connection reset');
    },
    close: async () => {},
  };
  const scorer = await createScorer({ store: failing, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());

  await t.rejects(scorer.score(request()), { code: 'WG_SCORER_STORE_UNAVAILABLE', status: 503 });
});

t.test('scorer accepts an opened model', async (t) => {
  const { loadRiskModel } = await import('../../scorer/model/risk-model.ts');
  const model = await loadRiskModel(MODEL_PATH);
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: 'opened-by-caller.onnx', model, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());

  const result = await scorer.score(request());

  t.equal(scorer.modelVersion, model.version);
  t.equal(result.modelVersion, model.version);
});

/** The memory store, recording every call of `forgetPatients`. */
class ForgetRecordingStore extends MemoryBaselineStore {
  readonly forgotten: { user: string; pseudonyms: readonly string[] }[] = [];

  override async forgetPatients(user: string, pseudonyms: readonly string[]): Promise<void> {
    this.forgotten.push({ user, pseudonyms: [...pseudonyms] });
    await super.forgetPatients(user, pseudonyms);
  }
}

t.test('forgetDenied makes a blocked patient new again', async (t) => {
  const store = new ForgetRecordingStore();
  const scorer = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());
  const pseudonym = new PatientPseudonymizer(Buffer.alloc(32, 3)).pseudonymize('blocked-1');

  const blocked = request({ time: MONDAY + 9 * HOUR, path: '/fhir/Patient/blocked-1' });
  const first = await scorer.score(blocked);
  scorer.forgetDenied!(blocked);
  const retry = await scorer.score(request({ time: MONDAY + 9 * HOUR + 60_000, path: '/fhir/Observation?patient=blocked-1' }));

  t.equal(first.features.patient_new_for_user, 1);
  t.same(store.forgotten, [{ user: blocked.user, pseudonyms: [pseudonym] }], 'the pseudonym that score passed to the store');
  t.equal(retry.features.patient_new_for_user, 1, 'the retry finds the patient new');
  t.equal(retry.features.unexplained_access, 1, 'and unexplained');
});

t.test('a shown patient explains the next request', async (t) => {
  const store = new ForgetRecordingStore();
  const scorer = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());

  const firstInput = request({ time: MONDAY + 9 * HOUR, path: '/fhir/Patient/allowed-1' });
  const first = await scorer.score(firstInput);
  scorer.recordShown!(firstInput);
  const next = await scorer.score(request({ time: MONDAY + 9 * HOUR + 60_000, path: '/fhir/Patient/allowed-1' }));

  t.equal(first.features.patient_new_for_user, 1);
  t.equal(first.features.unexplained_access, 1);
  t.equal(next.features.patient_new_for_user, 0, 'the history explains the patient');
  t.equal(next.features.unexplained_access, 0);
  t.same(store.forgotten, []);
});

t.test('a patient no response has shown explains nothing', async (t) => {
  const scorer = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());

  // The first request is stepped up, or still in flight, when the second one is scored.
  const stepped = request({ time: MONDAY + 9 * HOUR, path: '/fhir/Patient/pending-1' });
  const first = await scorer.score(stepped);
  const retry = await scorer.score(request({ time: MONDAY + 9 * HOUR + 30_000, path: '/fhir/Patient/pending-1' }));
  const laterHour = await scorer.score(request({ time: MONDAY + 10 * HOUR, path: '/fhir/Patient/pending-1' }));
  scorer.recordShown!({ ...stepped, time: MONDAY + 10 * HOUR });
  const afterShown = await scorer.score(request({ time: MONDAY + 10 * HOUR + 60_000, path: '/fhir/Patient/pending-1' }));

  t.equal(first.features.unexplained_access, 1);
  t.equal(retry.features.patient_new_for_user, 1, 'the retry finds the patient new');
  t.equal(retry.features.unexplained_access, 1, 'and unexplained');
  t.equal(retry.features.unexplained_hour_ratio, first.features.unexplained_hour_ratio, 'the hour counts the patient once');
  t.equal(laterHour.features.unexplained_access, 1, 'a later hour finds the patient unexplained too');
  t.ok(laterHour.features.unexplained_hour_ratio! > 0, 'and counts them in that hour');
  t.equal(afterShown.features.patient_new_for_user, 0, 'once a response showed the patient, the history explains them');
  t.equal(afterShown.features.unexplained_access, 0);
});

t.test('forgetDenied withholds every patient of a mixed request', async (t) => {
  const store = new ForgetRecordingStore();
  const scorer = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(() => scorer.close());

  // A blocked request for the target, then a blocked request naming one of the user's known
  // patients beside it: the target must stay withheld, or it would look explained.
  const knownInput = request({ time: MONDAY + 9 * HOUR, path: '/fhir/Patient/known-1' });
  await scorer.score(knownInput);
  scorer.recordShown!(knownInput);
  const target = request({ time: MONDAY + 9 * HOUR + 30_000, path: '/fhir/Patient/new-1' });
  await scorer.score(target);
  scorer.forgetDenied!(target);
  const mixed = request({ time: MONDAY + 9 * HOUR + 60_000, path: '/fhir/Observation?patient=known-1,new-1' });
  const mixedResult = await scorer.score(mixed);
  scorer.forgetDenied!(mixed);
  const withoutPatient = request({ time: MONDAY + 9 * HOUR + 90_000, path: '/fhir/Encounter?location=w1' });
  await scorer.score(withoutPatient);
  scorer.forgetDenied!(withoutPatient);
  const retry = await scorer.score(request({ time: MONDAY + 10 * HOUR + 120_000, path: '/fhir/Patient/new-1' }));
  const known = await scorer.score(request({ time: MONDAY + 10 * HOUR + 180_000, path: '/fhir/Patient/known-1' }));

  t.equal(mixedResult.features.patient_new_for_user, 0.5, 'the withheld target counts as new in the mixed request');
  t.equal(store.forgotten.length, 2, 'nothing is withheld for a request without a patient');
  t.equal(store.forgotten[1]!.pseudonyms.length, 2, 'both patients of the mixed request are withheld');
  t.equal(retry.features.patient_new_for_user, 1, 'the target is still new in the next hour');
  t.equal(retry.features.unexplained_access, 1, 'and still unexplained');
  t.ok(retry.features.unexplained_hour_ratio! > 0, 'and the next hour counts it again');
  t.equal(known.features.patient_new_for_user, 1, 'the known patient of a blocked request is withheld too');
});

/** Creates a scorer over a memory store whose `method` always fails, and collects every `onResponseError` call. */
async function scorerWithFailing(t: Test, method: 'forgetPatients' | 'showPatients') {
  const failures: { error: unknown; update: BaselineUpdate }[] = [];
  const memory = new MemoryBaselineStore();
  const store = {
    observe: memory.observe.bind(memory),
    [method]: async () => {
      throw new Error('redis down');
    },
    close: async () => {},
  };
  const scorer = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3), onResponseError: (error, update) => failures.push({ error, update }) });
  t.teardown(() => scorer.close());
  return { scorer, failures, errors: () => failures.map((failure) => failure.error) };
}

t.test('scorer forgetDenied never throws', async (t) => {
  const { scorer, errors } = await scorerWithFailing(t, 'forgetPatients');
  const blocked = request({ path: '/fhir/Patient/blocked-2' });
  await scorer.score(blocked);

  t.doesNotThrow(() => scorer.forgetDenied!(blocked));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(errors().length, 1, 'the error reaches onResponseError');
  t.match((errors()[0] as Error).message, /redis down/);
  t.doesNotThrow(() => scorer.forgetDenied!({ ...blocked, path: '/fhir/Patient/bad%id' }));
  t.equal(errors().length, 2, 'an invalid path is reported too');
  t.match(errors()[1], { code: 'WG_SCORER_INVALID_INPUT' });
});

t.test('scorer recordShown never throws', async (t) => {
  const { scorer, errors } = await scorerWithFailing(t, 'showPatients');
  const shownRequest = request({ path: '/fhir/Patient/shown-2' });
  await scorer.score(shownRequest);

  t.doesNotThrow(() => scorer.recordShown!(shownRequest));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(errors().length, 1, 'the error reaches onResponseError');
  t.match((errors()[0] as Error).message, /redis down/);
  t.doesNotThrow(() => scorer.recordShown!({ ...shownRequest, path: '/fhir/Patient/bad%id' }));
  t.equal(errors().length, 2, 'an invalid path is reported too');
  t.match(errors()[1], { code: 'WG_SCORER_INVALID_INPUT' });
  t.doesNotThrow(() => scorer.recordShown!({ ...shownRequest, path: '/fhir/Encounter?location=w1' }));
  t.equal(errors().length, 2, 'a request without a patient calls nothing');
});

t.test('recordShown ignores requests that show no record', async (t) => {
  const { scorer, failures } = await scorerWithFailing(t, 'showPatients');
  const shownRequest = request({ path: '/fhir/Patient/shown-3' });

  scorer.recordShown!({ ...shownRequest, method: 'HEAD' });
  scorer.recordShown!({ ...shownRequest, method: 'OPTIONS' });
  await new Promise((resolve) => setImmediate(resolve));
  t.same(failures, [], 'HEAD and OPTIONS call no store');
  scorer.recordShown!(shownRequest);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(failures.map((failure) => failure.update), [{ method: 'recordShown', user: shownRequest.user, routeId: shownRequest.routeId }], 'a GET does, and a failure names the update, user and route');
});

t.test('patient path templates reach scoring and the history', async (t) => {
  const store = new ForgetRecordingStore();
  const scorer = await createScorer({ store, modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3), patientPaths: ['/patients/{id}'] });
  const fhirOnly = await createScorer({ store: new MemoryBaselineStore(), modelPath: MODEL_PATH, patientKey: Buffer.alloc(32, 3) });
  t.teardown(async () => {
    await scorer.close();
    await fhirOnly.close();
  });
  const pseudonym = new PatientPseudonymizer(Buffer.alloc(32, 3)).pseudonymize('page-1');

  const page = request({ time: MONDAY + 9 * HOUR, path: '/patients/page-1' });
  const first = await scorer.score(page);
  scorer.recordShown!(page);
  const read = await scorer.score(request({ time: MONDAY + 9 * HOUR + 60_000, path: '/fhir/Patient/page-1' }));
  const blocked = request({ time: MONDAY + 9 * HOUR + 120_000, path: '/patients/page-1/notes' });
  await scorer.score(blocked);
  scorer.forgetDenied!(blocked);
  const retry = await scorer.score(request({ time: MONDAY + 9 * HOUR + 180_000, path: '/patients/page-1' }));
  const without = await fhirOnly.score(request({ time: MONDAY + 9 * HOUR, path: '/patients/page-1' }));

  t.equal(first.features.patient_access, 1, 'the page names one patient');
  t.equal(first.features.patient_new_for_user, 1);
  t.equal(read.features.patient_new_for_user, 0, 'recordShown of the page made the patient known to the FHIR read');
  t.same(store.forgotten, [{ user: blocked.user, pseudonyms: [pseudonym] }], 'forgetDenied withholds the patient of the page');
  t.equal(retry.features.patient_new_for_user, 1, 'so the next page request finds the patient new');
  t.equal(without.features.patient_access, 0, 'without templates the page names no patient');
  await t.rejects(scorer.score(request({ path: '/patients/bad%20id' })), { code: 'WG_SCORER_INVALID_INPUT' });
});
