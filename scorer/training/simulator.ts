import type { ScoreInput } from '../types.ts';
import { Prng } from './prng.ts';

/**
 * A simulator of clinical traffic through Wardgate, for training and evaluating the risk
 * model. It produces labelled requests with their responses (status, bytes), and the care
 * relationships and patient flags it used. The trainer feeds the requests through the same
 * baseline store and feature code as live traffic. Everything derives from the seed.
 */

export type Role = 'physician' | 'nurse' | 'clerk' | 'radiologist' | 'billing';
export type MisuseKind = 'employee_snooping' | 'neighbour_snooping' | 'vip_snooping' | 'bulk_export' | 'stolen_account' | 'scraping' | 'probing';
export const ROLES: readonly Role[] = Object.freeze(['physician', 'nurse', 'clerk', 'radiologist', 'billing']);
export const MISUSE_KINDS: readonly MisuseKind[] = Object.freeze([
  'employee_snooping',
  'neighbour_snooping',
  'vip_snooping',
  'bulk_export',
  'stolen_account',
  'scraping',
  'probing',
]);

export interface SimulatedRequest {
  readonly input: ScoreInput;
  readonly label: 'benign' | 'misuse';
  /** The misuse kind, or `normal` for benign traffic. */
  readonly kind: MisuseKind | 'normal';
  readonly role: Role;
  /** Day index from the start of the simulation. */
  readonly day: number;
  /** Misuse episode id (`<prefix>e<number>`), shared by the records of one episode. */
  readonly episode: string | undefined;
  readonly status: number;
  readonly bytes: number;
}

export interface PatientFlagsRecord {
  readonly vip: boolean;
  readonly employee: boolean;
}

/** The care relationships and patient flags a simulation used, in the panel-file shape. */
export interface Panel {
  /** User → patient ids in that user's care at any time of the simulation. */
  readonly practitioners: Record<string, string[]>;
  /** Patient id → flags, for flagged patients only. */
  readonly patients: Record<string, PatientFlagsRecord>;
  /** Patient id → hospital stays as [admission, discharge or null] in ISO 8601, as an ADT feed gives them. */
  readonly stays: Record<string, [string, string | null][]>;
}

export interface Simulation {
  readonly records: SimulatedRequest[];
  readonly panel: Panel;
}

export interface SimulationConfig {
  readonly seed: number;
  readonly days: number;
  /** Users per role are multiplied by this factor (1 gives 36 users). */
  readonly scale?: number;
  /** Mean misuse episodes per simulated day. */
  readonly episodesPerDay?: number;
  /** Misuse kinds to simulate; default all of {@link MISUSE_KINDS}. */
  readonly kinds?: readonly MisuseKind[];
  /** Prefix of user names, patient ids and episode ids, so two simulations share no one. */
  readonly prefix?: string;
  /** First simulated day as a UTC midnight in milliseconds; default {@link SIMULATION_START}. */
  readonly start?: number;
}

/** Monday 2025-01-06 00:00 UTC; the simulated hospital runs on UTC. */
export const SIMULATION_START = Date.UTC(2025, 0, 6);

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const WARDS = Object.freeze(['w1', 'w2', 'w3', 'w4', 'ed']);
const CENSUS = 24;
const HOST = 'ehr.hospital.test';
const BROWSERS = Object.freeze([
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/133.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Edg/131.0',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15',
]);
const USERS_PER_ROLE: Readonly<Record<Role, number>> = Object.freeze({ physician: 10, nurse: 15, clerk: 4, radiologist: 3, billing: 4 });
/** Roles that commit each misuse kind. Billing has no care relationships, so its neighbour snooping would look like its daily work. */
const ACTORS: Readonly<Record<MisuseKind, readonly Role[]>> = Object.freeze({
  employee_snooping: ['physician', 'nurse', 'clerk', 'radiologist', 'billing'],
  neighbour_snooping: ['physician', 'nurse', 'clerk', 'radiologist'],
  vip_snooping: ['physician', 'nurse', 'clerk', 'radiologist', 'billing'],
  bulk_export: ['physician', 'nurse', 'clerk', 'billing'],
  stolen_account: ['physician', 'nurse', 'clerk', 'radiologist', 'billing'],
  scraping: ['physician', 'nurse', 'clerk', 'radiologist', 'billing'],
  probing: ['physician', 'nurse', 'clerk', 'radiologist', 'billing'],
});

type Shift = 'day' | 'evening' | 'night' | 'office';

interface User {
  readonly id: string;
  readonly role: Role;
  readonly groups: readonly string[];
  readonly ward: string;
  readonly shift: Shift;
  readonly ip: string;
  readonly homeIp: string;
  userAgent: string;
  readonly joinDay: number;
  readonly weekOffset: number;
  /** Physicians only: on call from home on nights of this weekday. */
  readonly onCallWeekday: number;
  /** Whether the care source lists this user. For other users the care relationship is unknown. */
  readonly inPanel: boolean;
  /**
   * Sensitivity of the EHR route as this user's department configured it. It varies by user
   * so that the model cannot learn a role from the route's sensitivity.
   */
  readonly ehrSensitivity: ScoreInput['sensitivity'];
}

interface Route {
  readonly id: string;
  readonly sensitivity: ScoreInput['sensitivity'];
}

const ROUTES = Object.freeze({
  fhir: { id: 'ehr-fhir', sensitivity: 'high' },
  app: { id: 'ehr-app', sensitivity: 'low' },
  billing: { id: 'billing-fhir', sensitivity: 'normal' },
} satisfies Record<string, Route>);

interface World {
  readonly random: Prng;
  readonly prefix: string;
  readonly start: number;
  readonly users: User[];
  readonly census: Map<string, string[]>;
  /** Every patient admitted so far, flagged ones included. */
  readonly archive: string[];
  readonly flags: Map<string, PatientFlagsRecord>;
  /** Patient id → [admission, discharge] in milliseconds; discharge is null while the patient is in. */
  readonly stays: Map<string, [number, number | null]>;
  /** User → patients whose charts the user opened in their work. */
  readonly opened: Map<string, Set<string>>;
  /** Discharged patients in discharge order, with their ward and discharge time. */
  readonly discharged: { readonly id: string; readonly ward: string; readonly time: number }[];
  readonly care: Map<string, Set<string>>;
  readonly records: SimulatedRequest[];
  day: number;
  nextPatient: number;
}

/** Generates the requests of `config.days` days, sorted by time, with the panel they used. */
export function simulateTraffic(config: SimulationConfig): Simulation {
  const random = new Prng(config.seed);
  const prefix = config.prefix ?? '';
  const world: World = {
    random,
    prefix,
    start: config.start ?? SIMULATION_START,
    users: createUsers(random, config.scale ?? 1, prefix),
    census: new Map(),
    archive: [],
    flags: new Map(),
    stays: new Map(),
    discharged: [],
    opened: new Map(),
    care: new Map(),
    records: [],
    day: 0,
    nextPatient: 0,
  };
  for (const ward of WARDS) {
    world.census.set(ward, Array.from({ length: CENSUS }, () => admit(world, ward)));
  }
  const kinds = config.kinds ?? MISUSE_KINDS;
  let episode = 0;

  for (let day = 0; day < config.days; day += 1) {
    world.day = day;
    for (const ward of WARDS) {
      const patients = world.census.get(ward)!;
      for (let i = 0; i < patients.length; i += 1) {
        if (random.chance(ward === 'ed' ? 0.6 : 0.2)) {
          // Discharged around noon; the new patient takes the census place from midnight, so
          // night shifts that run past midnight still find yesterday's patients in.
          world.stays.get(patients[i]!)![1] = world.start + day * DAY + 12 * HOUR;
          world.discharged.push({ id: patients[i]!, ward, time: world.start + day * DAY + 12 * HOUR });
          patients[i] = admit(world, ward);
        }
      }
    }
    for (const user of world.users) {
      if (day >= user.joinDay && (user.role === 'physician' || user.role === 'nurse')) {
        assignCare(world, user, world.census.get(user.ward)!);
      }
    }

    for (const user of world.users) {
      if (day >= user.joinDay && worksOn(user, day)) {
        simulateShift(world, user);
      }
      if (day >= user.joinDay && user.role === 'physician' && day % 7 === user.onCallWeekday) {
        simulateOnCall(world, user);
      }
    }

    const episodes = kinds.length === 0 ? 0 : Math.round((config.episodesPerDay ?? 6) * (0.5 + random.next()));
    for (let i = 0; i < episodes; i += 1) {
      const kind = random.pick(kinds);
      const actors = world.users.filter((user) => day >= user.joinDay && ACTORS[kind].includes(user.role));
      simulateMisuse(world, random.pick(actors), kind, `${prefix}e${episode}`);
      episode += 1;
    }
  }

  const records = world.records
    .map((record, index) => ({ record, index }))
    .sort((a, b) => a.record.input.time - b.record.input.time || a.index - b.index)
    .map(({ record }) => record);

  return { records, panel: toPanel(world) };
}

function admit(world: World, ward: string): string {
  const id = `${world.prefix}${ward}-${world.nextPatient}`;
  world.nextPatient += 1;
  world.archive.push(id);
  world.stays.set(id, [world.start + world.day * DAY, null]);
  if (world.random.chance(0.01)) {
    world.flags.set(id, { vip: true, employee: false });
  } else if (world.random.chance(0.02)) {
    world.flags.set(id, { vip: false, employee: true });
  }

  return id;
}

function assignCare(world: World, user: User, patients: readonly string[]): void {
  const set = world.care.get(user.id) ?? new Set<string>();
  for (const patient of patients) set.add(patient);
  world.care.set(user.id, set);
}

function toPanel(world: World): Panel {
  const practitioners: Record<string, string[]> = {};
  const known = new Set(world.users.filter((user) => user.inPanel).map((user) => user.id));
  for (const [user, patients] of world.care) {
    if (known.has(user)) practitioners[user] = [...patients].sort();
  }
  const patients: Record<string, PatientFlagsRecord> = {};
  for (const [id, flags] of world.flags) patients[id] = flags;
  const stays: Record<string, [string, string | null][]> = {};
  for (const [id, [start, end]] of world.stays) stays[id] = [[new Date(start).toISOString(), end === null ? null : new Date(end).toISOString()]];

  return { practitioners, patients, stays };
}

function createUsers(random: Prng, scale: number, prefix: string): User[] {
  const users: User[] = [];

  for (const role of ROLES) {
    const count = Math.max(1, Math.round(USERS_PER_ROLE[role] * scale));
    for (let i = 0; i < count; i += 1) {
      const ward = WARDS[i % WARDS.length]!;
      const clinical = role === 'physician' || role === 'nurse';
      let shift: Shift = 'office';
      if (clinical) {
        shift = random.pick<Shift>(role === 'nurse' ? ['day', 'evening', 'night'] : ['day', 'day', 'evening']);
      } else if (role === 'radiologist') {
        shift = random.pick<Shift>(['day', 'evening', 'night']);
      }
      let subnet = 30;
      if (clinical) {
        subnet = 20 + WARDS.indexOf(ward);
      } else if (role === 'radiologist') {
        subnet = 31;
      }

      users.push({
        id: `${prefix}${role}-${i}@hospital.test`,
        role,
        groups: clinical ? ['staff', `${role}s`, `team-${ward}`] : ['staff', `${role}s`],
        ward,
        shift,
        ip: `10.${subnet}.${random.int(0, 3)}.${random.int(2, 250)}`,
        homeIp: `100.64.${random.int(0, 255)}.${random.int(2, 250)}`,
        userAgent: random.pick(BROWSERS),
        joinDay: random.chance(0.15) ? random.int(3, 12) : 0,
        weekOffset: random.int(0, 6),
        onCallWeekday: random.int(0, 6),
        // Care sources rarely cover everyone: about a quarter of the staff are unknown to it.
        inPanel: role !== 'billing' && random.chance(0.75),
        ehrSensitivity: random.pick<ScoreInput['sensitivity']>(['normal', 'high']),
      });
    }
  }

  return users;
}

function worksOn(user: User, day: number): boolean {
  return user.shift === 'office' ? day % 7 < 5 : (day + user.weekOffset) % 7 < 5;
}

function shiftStart(world: World, user: User, day: number): number {
  const hour = { day: 7, evening: 15, night: 23, office: 8 }[user.shift];

  return world.start + day * DAY + hour * HOUR;
}

interface Emitter {
  (time: number, method: string, path: string, route: Route, response?: { status: number; bytes: number }): void;
  /** Patients whose charts this user opened in their work so far. */
  readonly opened: Set<string>;
}

function benignEmitter(world: World, user: User, ip: string): Emitter {
  const opened = world.opened.get(user.id) ?? new Set<string>();
  world.opened.set(user.id, opened);
  const emit = (time: number, method: string, path: string, route: Route, response?: { status: number; bytes: number }): void => {
    const { random } = world;
    const missing = random.chance(0.003);
    let status = method === 'POST' ? 201 : 200;
    if (missing) {
      status = 404;
    }
    push(world, user, { time, method, path, route, ip, userAgent: user.userAgent }, 'normal', undefined, response ?? {
      status,
      bytes: missing ? 180 : benignBytes(random, path),
    });
  };

  return Object.assign(emit, { opened });
}

function benignBytes(random: Prng, path: string): number {
  if (path.endsWith('$everything')) return random.int(150_000, 2_000_000);
  if (path.startsWith('/app/')) return random.int(90_000, 120_000);
  if (path.includes('?')) return random.int(2_000, 40_000);

  return random.int(1_500, 6_000);
}

/** Opens one patient's chart with a few observations; returns the time after the visit. */
function visit(world: World, emit: Emitter, time: number, patient: string, extra: string): number {
  const { random } = world;
  let t = time;
  emit.opened.add(patient);
  emit(t, 'GET', `/fhir/Patient/${patient}`, ROUTES.fhir);
  for (let i = random.int(1, 4); i > 0; i -= 1) {
    t += random.int(3, 25) * 1000;
    emit(t, 'GET', `/fhir/Observation?patient=${patient}&category=${random.pick(['vital-signs', 'laboratory'])}`, ROUTES.fhir);
  }
  if (extra !== '') {
    t += random.int(5, 30) * 1000;
    emit(t, extra.startsWith('POST ') ? 'POST' : 'GET', extra.replace(/^POST /, ''), ROUTES.fhir);
  }

  return t + random.int(20, 240) * 1000;
}

function simulateShift(world: World, user: User): void {
  const { random, day } = world;
  const start = shiftStart(world, user, day);
  const end = start + 8 * HOUR;
  const ward = world.census.get(user.ward)!;

  // A legitimate change of browser, or a shift worked from home.
  if (random.chance(0.01)) {
    user.userAgent = `${random.pick(BROWSERS)} Update/${day}`;
  }
  const ip = user.role === 'physician' && random.chance(0.05) ? user.homeIp : user.ip;
  const emit = benignEmitter(world, user, ip);

  // A user's first day behind Wardgate (deployment or joining) often starts with a chart.
  if (day === user.joinDay && random.chance(0.5)) {
    visit(world, emit, start - random.int(1, 10) * MINUTE, random.pick(ward), '');
  }

  for (let t = start; t < end; t += random.int(20, 50) * MINUTE) {
    emit(t, 'GET', `/fhir/Encounter?location=${user.ward}&status=in-progress`, ROUTES.fhir);
    emit(t + 400, 'GET', '/app/main.js', ROUTES.app);
  }

  switch (user.role) {
    case 'physician':
      simulatePhysician(world, user, emit, start, end, ward);
      break;
    case 'nurse': {
      // Covering for a colleague: the nurse joins another ward's care team for the shift.
      const covering = random.chance(0.05) ? world.census.get(random.pick(WARDS))! : ward;
      assignCare(world, user, covering);
      for (let t = start + 20 * MINUTE; t < end - 20 * MINUTE; t += random.int(90, 150) * MINUTE) {
        let round = t;
        for (const patient of random.sample(covering, random.int(5, 9))) {
          round = visit(world, emit, round, patient, 'POST /fhir/Observation');
        }
      }
      break;
    }
    case 'clerk': {
      // Admissions and insurance checks across all wards; ED surges double the work.
      for (let i = random.int(15, 30) * (random.chance(0.2) ? 2 : 1); i > 0; i -= 1) {
        const patient = random.pick(world.census.get(random.pick(WARDS))!);
        // The registration task puts the patient on the clerk's work list.
        assignCare(world, user, [patient]);
        visit(world, emit, random.int(start, end), patient, `/fhir/Coverage?patient=${patient}`);
      }
      break;
    }
    case 'radiologist': {
      let t = start + 10 * MINUTE;
      for (let i = random.int(25, 45); i > 0 && t < end; i -= 1) {
        const patient = random.pick(world.census.get(random.pick(WARDS))!);
        // An imaging order names the reading radiologist, which is a care relationship.
        assignCare(world, user, [patient]);
        t = visit(world, emit, t, patient, `/fhir/ImagingStudy?patient=${patient}`) + random.int(2, 8) * MINUTE;
      }
      break;
    }
    case 'billing': {
      for (let i = random.int(40, 70); i > 0; i -= 1) {
        const patient = random.pick(world.archive);
        const time = random.int(start, end);
        emit(time, 'GET', `/fhir/Claim?patient=${patient}`, ROUTES.billing);
        emit(time + random.int(5, 40) * 1000, 'GET', `/fhir/Patient/${patient}`, ROUTES.billing);
      }
      break;
    }
  }
}

function simulatePhysician(world: World, user: User, emit: Emitter, start: number, end: number, ward: readonly string[]): void {
  const { random } = world;

  // Ward round: most of the census within the first two hours.
  let t = start + 30 * MINUTE;
  for (const patient of random.sample(ward, random.int(10, 18))) {
    t = visit(world, emit, t, patient, '');
  }
  for (let i = random.int(6, 12); i > 0; i -= 1) {
    visit(world, emit, random.int(t, end), random.pick(ward), '');
  }

  // Discharge summaries: exports of the physician's own patients.
  if (random.chance(0.15)) {
    let time = random.int(start, end - HOUR);
    for (const patient of random.sample(ward, random.int(1, 3))) {
      emit(time, 'GET', `/fhir/Patient/${patient}/$everything`, ROUTES.fhir);
      time += random.int(2, 20) * MINUTE;
    }
  }

  // ED surge: many new patients within two hours.
  if (user.ward === 'ed' && random.chance(0.3)) {
    let surge = random.int(start, end - 2 * HOUR);
    for (const patient of random.sample(ward, random.int(12, 22))) {
      surge = visit(world, emit, surge, patient, '');
    }
  }

  // Follow-up after discharge: results and letters arrive for patients the physician treated
  // who went home in the last week, and the physician opens their records.
  if (random.chance(0.5)) {
    const recent = world.discharged.filter((patient) => patient.time < start && patient.time >= start - 7 * DAY && emit.opened.has(patient.id));
    let time = random.int(start + HOUR, end - HOUR);
    for (const patient of random.sample(recent, random.int(1, 3))) {
      time = visit(world, emit, time, patient.id, '');
    }
  }

  // Covering for a colleague on another ward: their patients join this physician's care.
  if (random.chance(0.08)) {
    const other = world.census.get(random.pick(WARDS.filter((name) => name !== user.ward)))!;
    assignCare(world, user, other);
    let time = random.int(start, end - 2 * HOUR);
    for (const patient of random.sample(other, random.int(5, 12))) {
      time = visit(world, emit, time, patient, '');
    }
  }
}

/** Simulates an on-call night: a few calls about the physician's own patients, from home. */
function simulateOnCall(world: World, user: User): void {
  const { random, day } = world;
  const emit = benignEmitter(world, user, user.homeIp);
  const ward = world.census.get(user.ward)!;

  for (let calls = random.int(0, 3); calls > 0; calls -= 1) {
    const time = world.start + day * DAY + random.int(0, 5) * HOUR + random.int(0, 59) * MINUTE;
    visit(world, emit, time, random.pick(ward), '');
  }
}

function simulateMisuse(world: World, user: User, kind: MisuseKind, episode: string): void {
  const { random, day } = world;
  // Snooping and exports happen during the user's shift, between their real work. Scripts,
  // probes and stolen sessions run while the owner is off duty, as they usually do.
  const onShift = worksOn(user, day)
    ? shiftStart(world, user, day) + random.int(1, 6) * HOUR
    : world.start + day * DAY + random.int(17, 21) * HOUR;
  const offDuty = shiftStart(world, user, day) + random.int(10, 14) * HOUR;
  const start = kind === 'scraping' || kind === 'probing' ? offDuty : onShift;
  const own = world.care.get(user.id) ?? new Set<string>();
  // Targets are patients outside the user's care, so no later care assignment (the panel is
  // static) can turn the access into a legitimate one. Most are discharged patients.
  const admitted = new Set([...world.census.values()].flat());
  const outside = (predicate: (flags: PatientFlagsRecord | undefined) => boolean): string[] =>
    world.archive.filter((patient) => !own.has(patient) && !admitted.has(patient) && predicate(world.flags.get(patient)));
  const emit = (time: number, path: string, ip: string, userAgent: string, status: number, bytes: number): void => {
    push(world, user, { time, method: 'GET', path, route: ROUTES.fhir, ip, userAgent }, kind, episode, { status, bytes });
  };
  const browse = (patients: readonly string[], gapSeconds: [number, number]): void => {
    let t = start;
    for (const patient of patients) {
      emit(t, `/fhir/Patient/${patient}`, user.ip, user.userAgent, 200, random.int(1_500, 6_000));
      if (random.chance(0.5)) {
        emit(t + random.int(5, 20) * 1000, `/fhir/Observation?patient=Patient/${patient}`, user.ip, user.userAgent, 200, random.int(2_000, 40_000));
      }
      t += random.int(gapSeconds[0], gapSeconds[1]) * 1000;
    }
  };

  switch (kind) {
    case 'employee_snooping':
      browse(random.sample(outside((flags) => flags?.employee === true), random.int(2, 6)), [20, 120]);
      break;
    case 'vip_snooping': {
      // A celebrity in the hospital right now draws the most curiosity, so some episodes open
      // VIPs who are still admitted, outside the user's care.
      const inHospital = [...admitted].filter((patient) => !own.has(patient) && world.flags.get(patient)?.vip === true);
      const targets = inHospital.length > 0 && random.chance(0.4) ? inHospital : outside((flags) => flags?.vip === true);
      browse(random.sample(targets, random.int(1, 4)), [20, 120]);
      break;
    }
    case 'neighbour_snooping':
      browse(random.sample(outside((flags) => flags === undefined), random.int(3, 12)), [20, 90]);
      break;
    case 'bulk_export': {
      let t = start;
      for (const patient of random.sample(outside(() => true), random.int(4, 20))) {
        emit(t, `/fhir/Patient/${patient}/$everything`, user.ip, user.userAgent, 200, random.int(150_000, 2_000_000));
        t += random.int(30, 180) * 1000;
      }
      break;
    }
    case 'stolen_account': {
      const ip = random.chance(0.3)
        ? `2001:db8:${random.int(1, 9999).toString(16)}::${random.int(1, 999)}`
        : `${random.int(11, 223)}.${random.int(0, 255)}.${random.int(0, 255)}.${random.int(2, 250)}`;
      const userAgent = random.pick(['Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0', 'curl/8.5.0']);
      let t = user.shift === 'night' ? offDuty : world.start + day * DAY + random.int(60, 270) * MINUTE;
      for (const patient of random.sample(outside(() => true), random.int(25, 80))) {
        emit(t, `/fhir/Patient/${patient}`, ip, userAgent, 200, random.int(1_500, 6_000));
        emit(t + random.int(1, 5) * 1000, `/fhir/Observation?patient=${patient}`, ip, userAgent, 200, random.int(2_000, 40_000));
        t += random.int(2, 15) * 1000;
      }
      break;
    }
    case 'scraping': {
      const ip = random.chance(0.5) ? user.ip : user.homeIp;
      let t = start;
      for (let i = random.int(60, 300); i > 0; i -= 1) {
        emit(t, `/fhir/Observation?patient=${random.pick(world.archive)}`, ip, 'python-requests/2.31.0', 200, random.int(2_000, 40_000));
        t += random.int(300, 2000);
      }
      break;
    }
    case 'probing': {
      let t = start;
      for (let i = random.int(20, 60); i > 0; i -= 1) {
        const guess = random.chance(0.6);
        const path = guess ? `/fhir/Patient/${world.prefix}x${random.int(0, 99_999)}` : random.pick(['/fhir/Group', '/admin/users', '/fhir/AuditEvent', '/fhir/Person']);
        emit(t, path, user.ip, user.userAgent, guess ? 404 : 403, random.int(150, 400));
        t += random.int(1, 20) * 1000;
      }
      break;
    }
  }
}

interface RequestSpec {
  readonly time: number;
  readonly method: string;
  readonly path: string;
  readonly route: Route;
  readonly ip: string;
  readonly userAgent: string;
}

function push(
  world: World,
  user: User,
  spec: RequestSpec,
  kind: MisuseKind | 'normal',
  episode: string | undefined,
  response: { status: number; bytes: number },
): void {
  world.records.push({
    input: {
      user: user.id,
      groups: user.groups,
      time: Math.round(spec.time),
      ip: spec.ip,
      userAgent: spec.userAgent,
      method: spec.method,
      host: HOST,
      path: spec.path,
      routeId: spec.route.id,
      sensitivity: spec.route.id === ROUTES.fhir.id ? user.ehrSensitivity : spec.route.sensitivity,
    },
    label: kind === 'normal' ? 'benign' : 'misuse',
    kind,
    role: user.role,
    day: world.day,
    episode,
    status: response.status,
    bytes: response.bytes,
  });
}
