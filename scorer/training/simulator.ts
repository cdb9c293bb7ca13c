import type { ScoreInput } from '../types.ts';
import { Prng } from './prng.ts';

/**
 * A simulator of clinical traffic through Wardgate, for training and evaluating the risk
 * model. It produces requests only; the trainer feeds them through the same baseline store
 * and feature code as live traffic. Everything derives from the seed.
 */

export type Role = 'physician' | 'nurse' | 'clerk' | 'radiologist' | 'billing';
export type Label = 'normal' | 'snooping' | 'bulk_export' | 'stolen_account' | 'scraping';
export const ROLES: readonly Role[] = Object.freeze(['physician', 'nurse', 'clerk', 'radiologist', 'billing']);
export const MISUSE_LABELS: readonly Label[] = Object.freeze(['snooping', 'bulk_export', 'stolen_account', 'scraping']);

export interface SimulatedRequest {
  readonly input: ScoreInput;
  readonly label: Label;
  readonly role: Role;
  /** Day index from the start of the simulation. */
  readonly day: number;
  /** Misuse episode number, or -1 for normal traffic. */
  readonly episode: number;
}

export interface SimulationConfig {
  readonly seed: number;
  readonly days: number;
  /** Users per role are multiplied by this factor (1 gives 36 users). */
  readonly scale?: number;
  /** Mean misuse episodes per simulated day. */
  readonly episodesPerDay?: number;
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
const USERS_PER_ROLE: Readonly<Record<Role, number>> = Object.freeze({
  physician: 10,
  nurse: 15,
  clerk: 4,
  radiologist: 3,
  billing: 4,
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

/** Generates the requests of `config.days` days, sorted by time. */
export function simulateTraffic(config: SimulationConfig): SimulatedRequest[] {
  const random = new Prng(config.seed);
  const users = createUsers(random, config.scale ?? 1);
  const census = new Map(WARDS.map((ward) => [ward, Array.from({ length: CENSUS }, (_, i) => `${ward}-${i}`)]));
  const archive: string[] = [...census.values()].flat();
  const records: SimulatedRequest[] = [];
  let nextPatient = CENSUS;
  let episode = 0;

  for (let day = 0; day < config.days; day += 1) {
    for (const ward of WARDS) {
      const patients = census.get(ward)!;
      for (let i = 0; i < patients.length; i += 1) {
        if (random.chance(ward === 'ed' ? 0.6 : 0.2)) {
          patients[i] = `${ward}-${nextPatient}`;
          nextPatient += 1;
          archive.push(patients[i]!);
        }
      }
    }

    const world: World = { random, census, archive, records, day };
    for (const user of users) {
      if (day >= user.joinDay && worksOn(user, day)) {
        simulateShift(world, user);
      }
    }

    const episodes = Math.round((config.episodesPerDay ?? 2) * (0.5 + random.next()));
    for (let i = 0; i < episodes; i += 1) {
      const active = users.filter((user) => day >= user.joinDay);
      simulateMisuse(world, random.pick(active), random.pick(MISUSE_LABELS), episode);
      episode += 1;
    }
  }

  return records
    .map((record, index) => ({ record, index }))
    .sort((a, b) => a.record.input.time - b.record.input.time || a.index - b.index)
    .map(({ record }) => record);
}

interface World {
  readonly random: Prng;
  readonly census: Map<string, string[]>;
  readonly archive: string[];
  readonly records: SimulatedRequest[];
  readonly day: number;
}

function createUsers(random: Prng, scale: number): User[] {
  const users: User[] = [];

  for (const role of ROLES) {
    const count = Math.max(1, Math.round(USERS_PER_ROLE[role] * scale));
    for (let i = 0; i < count; i += 1) {
      const ward = WARDS[i % WARDS.length]!;
      const clinical = role === 'physician' || role === 'nurse';
      const shift: Shift = clinical
        ? random.pick<Shift>(role === 'nurse' ? ['day', 'evening', 'night'] : ['day', 'day', 'evening'])
        : role === 'radiologist'
          ? random.pick<Shift>(['day', 'evening'])
          : 'office';
      let subnet = 30;
      if (clinical) {
        subnet = 20 + WARDS.indexOf(ward);
      } else if (role === 'radiologist') {
        subnet = 31;
      }

      users.push({
        id: `${role}-${i}@hospital.test`,
        role,
        groups: clinical ? ['staff', `${role}s`, `team-${ward}`] : ['staff', `${role}s`],
        ward,
        shift,
        ip: `10.${subnet}.${random.int(0, 3)}.${random.int(2, 250)}`,
        homeIp: `100.64.${random.int(0, 255)}.${random.int(2, 250)}`,
        userAgent: random.pick(BROWSERS),
        joinDay: random.chance(0.15) ? random.int(3, 12) : 0,
        weekOffset: random.int(0, 6),
      });
    }
  }

  return users;
}

function worksOn(user: User, day: number): boolean {
  return user.shift === 'office' ? day % 7 < 5 : (day + user.weekOffset) % 7 < 5;
}

function shiftStart(user: User, day: number): number {
  const hour = { day: 7, evening: 15, night: 23, office: 8 }[user.shift];

  return SIMULATION_START + day * DAY + hour * HOUR;
}

function simulateShift(world: World, user: User): void {
  const { random, day } = world;
  const start = shiftStart(user, day);
  const end = start + 8 * HOUR;
  const ward = world.census.get(user.ward)!;

  // A legitimate change of browser or a shift worked from home.
  if (random.chance(0.01)) {
    user.userAgent = `${random.pick(BROWSERS)} Update/${day}`;
  }
  const ip = user.role === 'physician' && random.chance(0.05) ? user.homeIp : user.ip;
  const emit = (time: number, method: string, path: string, route: Route): void => {
    push(world, user, { time, method, path, route, ip, userAgent: user.userAgent }, 'normal', -1);
  };
  const visit = (time: number, patient: string, extra: string): number => {
    let t = time;
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
  };

  for (let t = start; t < end; t += random.int(20, 50) * MINUTE) {
    emit(t, 'GET', `/fhir/Encounter?location=${user.ward}&status=in-progress`, ROUTES.fhir);
    emit(t + 400, 'GET', '/app/main.js', ROUTES.app);
  }

  switch (user.role) {
    case 'physician': {
      // Ward round: most of the census within the first two hours.
      let t = start + 30 * MINUTE;
      for (const patient of random.sample(ward, random.int(10, 18))) {
        t = visit(t, patient, '');
      }
      for (let i = random.int(6, 12); i > 0; i -= 1) {
        visit(random.int(t, end), random.pick(ward), '');
      }
      if (random.chance(0.05)) {
        emit(random.int(start, end), 'GET', `/fhir/Patient/${random.pick(ward)}/$everything`, ROUTES.fhir);
      }
      if (user.ward === 'ed' && random.chance(0.3)) {
        // ED surge: many new patients within two hours.
        let surge = random.int(start, end - 2 * HOUR);
        for (const patient of random.sample(ward, random.int(12, 22))) {
          surge = visit(surge, patient, '');
        }
      }
      break;
    }
    case 'nurse': {
      for (let t = start + 20 * MINUTE; t < end - 20 * MINUTE; t += random.int(90, 150) * MINUTE) {
        let round = t;
        for (const patient of random.sample(ward, random.int(5, 9))) {
          round = visit(round, patient, 'POST /fhir/Observation');
        }
      }
      break;
    }
    case 'clerk': {
      for (let i = random.int(15, 30); i > 0; i -= 1) {
        const patient = random.pick(world.census.get(random.pick(WARDS))!);
        visit(random.int(start, end), patient, `/fhir/Coverage?patient=${patient}`);
      }
      break;
    }
    case 'radiologist': {
      let t = start + 10 * MINUTE;
      for (let i = random.int(25, 45); i > 0 && t < end; i -= 1) {
        const patient = random.pick(world.census.get(random.pick(WARDS))!);
        t = visit(t, patient, `/fhir/ImagingStudy?patient=${patient}`) + random.int(2, 8) * MINUTE;
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

function simulateMisuse(world: World, user: User, label: Label, episode: number): void {
  const { random, day } = world;
  const start = worksOn(user, day) ? shiftStart(user, day) + random.int(1, 6) * HOUR : SIMULATION_START + day * DAY + random.int(17, 21) * HOUR;
  const emit = (time: number, path: string, ip: string, userAgent: string): void => {
    push(world, user, { time, method: 'GET', path, route: ROUTES.fhir, ip, userAgent }, label, episode);
  };

  switch (label) {
    case 'snooping': {
      let t = start;
      for (const patient of random.sample(world.archive, random.int(15, 45))) {
        emit(t, `/fhir/Patient/${patient}`, user.ip, user.userAgent);
        if (random.chance(0.4)) {
          emit(t + random.int(5, 20) * 1000, `/fhir/Observation?patient=Patient/${patient}`, user.ip, user.userAgent);
        }
        t += random.int(20, 90) * 1000;
      }
      break;
    }
    case 'bulk_export': {
      let t = start;
      for (const patient of random.sample(world.archive, random.int(4, 20))) {
        emit(t, `/fhir/Patient/${patient}/$everything`, user.ip, user.userAgent);
        t += random.int(30, 180) * 1000;
      }
      break;
    }
    case 'stolen_account': {
      const ip = random.chance(0.3) ? `2001:db8:${random.int(1, 9999).toString(16)}::${random.int(1, 999)}` : `203.0.113.${random.int(2, 250)}`;
      const userAgent = random.pick(['Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0', 'curl/8.5.0']);
      let t = SIMULATION_START + day * DAY + random.int(60, 270) * MINUTE;
      for (const patient of random.sample(world.archive, random.int(25, 80))) {
        emit(t, `/fhir/Patient/${patient}`, ip, userAgent);
        emit(t + random.int(1, 5) * 1000, `/fhir/Observation?patient=${patient}`, ip, userAgent);
        t += random.int(2, 15) * 1000;
      }
      break;
    }
    case 'scraping': {
      const ip = random.chance(0.5) ? user.ip : user.homeIp;
      let t = start;
      for (let i = random.int(60, 300); i > 0; i -= 1) {
        emit(t, `/fhir/Observation?patient=${random.pick(world.archive)}`, ip, 'python-requests/2.31.0');
        t += random.int(300, 2000);
      }
      break;
    }
    case 'normal':
      break;
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

function push(world: World, user: User, spec: RequestSpec, label: Label, episode: number): void {
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
      sensitivity: spec.route.sensitivity,
    },
    label,
    role: user.role,
    day: world.day,
    episode,
  });
}
