import type { IncomingMessage, ServerResponse } from 'node:http';

import { demoCareData, type DemoAppointment, type DemoEncounter } from './care.ts';
import type { DemoDataset, DemoObservation, DemoPatient } from './patients.ts';

const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

/**
 * Serves the read-only FHIR R4-style API under `/fhir`. Returns `false` when the path is not
 * a FHIR path, so the caller can try other handlers.
 */
export function handleFhirRequest(dataset: DemoDataset, req: IncomingMessage, res: ServerResponse, url: URL): boolean {
  if (url.pathname !== '/fhir' && !url.pathname.startsWith('/fhir/')) return false;

  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendOutcome(res, 405, 'not-supported', `${req.method} is not supported: this demo FHIR API is read-only.`);
    return true;
  }

  const segments = url.pathname.split('/').slice(2).map(decodeURIComponent);
  const [resourceType, id, operation] = segments;
  const care = demoCareData(dataset);
  const toPatientResource = (patient: DemoPatient) => patientResource(patient, care.securityLabels.get(patient.id) ?? []);

  if (resourceType === 'Patient' && id === undefined) {
    const name = url.searchParams.get('name')?.toLowerCase();
    const security = securityCodes(url.searchParams.get('_security'));
    const matches = dataset.patients
      .filter((patient) => name === undefined || `${patient.given} ${patient.family}`.toLowerCase().includes(name))
      .filter((patient) => security === null || (care.securityLabels.get(patient.id) ?? []).some((code) => security.has(code)));
    sendSearchPage(res, url, matches.map(toPatientResource));
  } else if (resourceType === 'Patient' && id !== undefined && segments.length <= 3) {
    const patient = dataset.patients.find((candidate) => candidate.id === id);
    if (patient === undefined) {
      sendOutcome(res, 404, 'not-found', `Patient/${id} was not found.`);
    } else if (operation === undefined) {
      sendJson(res, 200, toPatientResource(patient));
    } else if (operation === '$everything') {
      const observations = dataset.observations.filter((observation) => observation.patientId === id);
      sendJson(res, 200, bundle([toPatientResource(patient), ...observations.map(toObservationResource)], observations.length + 1));
    } else {
      sendOutcome(res, 404, 'not-found', `Operation ${operation} is not supported on Patient.`);
    }
  } else if (resourceType === 'Observation' && id === undefined) {
    const patientId = url.searchParams.get('patient')?.replace(/^Patient\//, '');
    if (patientId === undefined) {
      sendOutcome(res, 400, 'required', 'Observation search requires the patient parameter, such as ?patient=p-0001.');
    } else {
      sendSearchPage(res, url, dataset.observations.filter((observation) => observation.patientId === patientId).map(toObservationResource));
    }
  } else if (resourceType === 'CareTeam' && id === undefined) {
    const participant = url.searchParams.get('participant')?.replace(/^Practitioner\//, '');
    if (participant === undefined) {
      sendOutcome(res, 400, 'required', 'CareTeam search requires the participant parameter, such as ?participant=dr-001.');
    } else {
      const patients = dataset.patients.filter((patient) => care.careTeams.get(patient.id)?.includes(participant));
      sendSearchPage(res, url, patients.map((patient) => toCareTeamResource(patient, care.careTeams.get(patient.id) ?? [])));
    }
  } else if (resourceType === 'Practitioner' && id !== undefined && segments.length === 2) {
    if (care.practitioners.includes(id)) sendJson(res, 200, { resourceType: 'Practitioner', id, active: true });
    else sendOutcome(res, 404, 'not-found', `Practitioner/${id} was not found.`);
  } else if (resourceType === 'Encounter' && id === undefined) {
    // NOTE: the demo ignores the date parameter, so a participant search also returns finished
    // encounters, however long ago they ended.
    const participant = (url.searchParams.get('participant') ?? url.searchParams.get('practitioner'))?.replace(/^Practitioner\//, '');
    const statuses = searchTokens(url.searchParams.get('status'));
    if (participant === undefined && statuses === null) {
      sendOutcome(res, 400, 'required', 'Encounter search requires the participant or status parameter, such as ?participant=Practitioner/dr-001 or ?status=in-progress.');
    } else {
      const matches = care.encounters
        .filter((encounter) => participant === undefined || encounter.practitioner === participant)
        .filter((encounter) => statuses === null || statuses.has(encounter.status));
      sendSearchPage(res, url, matches.map(toEncounterResource));
    }
  } else if (resourceType === 'Appointment' && id === undefined) {
    // NOTE: the demo ignores the date parameter and returns every appointment of the practitioner.
    const practitioner = (url.searchParams.get('practitioner') ?? url.searchParams.get('actor'))?.replace(/^Practitioner\//, '');
    if (practitioner === undefined) {
      sendOutcome(res, 400, 'required', 'Appointment search requires the practitioner parameter, such as ?practitioner=Practitioner/dr-001.');
    } else {
      sendSearchPage(res, url, care.appointments.filter((appointment) => appointment.practitioner === practitioner).map(toAppointmentResource));
    }
  } else {
    sendOutcome(res, 404, 'not-found', `No FHIR endpoint at ${url.pathname}.`);
  }

  return true;
}

function sendSearchPage(res: ServerResponse, url: URL, resources: readonly object[]): void {
  const count = Number(url.searchParams.get('_count') ?? DEFAULT_PAGE_SIZE);
  const offset = Number(url.searchParams.get('_offset') ?? 0);
  if (!Number.isInteger(count) || count < 1 || count > MAX_PAGE_SIZE || !Number.isInteger(offset) || offset < 0) {
    sendOutcome(res, 400, 'value', `_count must be an integer from 1 to ${MAX_PAGE_SIZE} and _offset a non-negative integer.`);
    return;
  }

  const page = resources.slice(offset, offset + count);
  const result = bundle(page, resources.length) as Record<string, unknown>;
  if (offset + count < resources.length) {
    const next = new URL(url);
    next.searchParams.set('_offset', String(offset + count));
    next.searchParams.set('_count', String(count));
    result.link = [{ relation: 'next', url: `${next.pathname}${next.search}` }];
  }

  sendJson(res, 200, result);
}

function bundle(resources: readonly object[], total: number): object {
  return { resourceType: 'Bundle', type: 'searchset', total, entry: resources.map((resource) => ({ resource })) };
}

/** HL7 v3 ActCode system of the `CELEB` (VIP) and `EMP` (employee) security labels. */
const ACT_CODE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';

function patientResource(patient: DemoPatient, securityLabels: readonly string[]): object {
  const security = securityLabels.map((code) => ({ system: ACT_CODE_SYSTEM, code }));
  return {
    resourceType: 'Patient',
    id: patient.id,
    meta: { tag: [{ system: 'urn:wardgate:demo', code: 'synthetic' }], ...(security.length > 0 ? { security } : {}) },
    name: [{ family: patient.family, given: [patient.given] }],
    gender: patient.gender,
    birthDate: patient.birthDate,
  };
}

function toObservationResource(observation: DemoObservation): object {
  return {
    resourceType: 'Observation',
    id: observation.id,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: observation.code, display: observation.display }] },
    subject: { reference: `Patient/${observation.patientId}` },
    effectiveDateTime: observation.effective,
    valueQuantity: { value: observation.value, unit: observation.unit, system: 'http://unitsofmeasure.org', code: observation.unit },
  };
}

function toCareTeamResource(patient: DemoPatient, careTeam: readonly string[]): object {
  return {
    resourceType: 'CareTeam',
    id: `ct-${patient.id}`,
    status: 'active',
    subject: { reference: `Patient/${patient.id}` },
    participant: careTeam.map((practitioner) => ({ member: { reference: `Practitioner/${practitioner}` } })),
  };
}

function toEncounterResource(encounter: DemoEncounter): object {
  return {
    resourceType: 'Encounter',
    id: encounter.id,
    status: encounter.status,
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP', display: 'inpatient encounter' },
    subject: { reference: `Patient/${encounter.patientId}` },
    participant: [{ individual: { reference: `Practitioner/${encounter.practitioner}` } }],
    period: encounter.end === undefined ? { start: encounter.start } : { start: encounter.start, end: encounter.end },
  };
}

function toAppointmentResource(appointment: DemoAppointment): object {
  return {
    resourceType: 'Appointment',
    id: appointment.id,
    status: 'booked',
    start: appointment.start,
    participant: [
      { actor: { reference: `Patient/${appointment.patientId}` }, status: 'accepted' },
      { actor: { reference: `Practitioner/${appointment.practitioner}` }, status: 'accepted' },
    ],
  };
}

/** Parses a `_security` search value (`system|code`, comma-separated); null when absent. */
function securityCodes(value: string | null): Set<string> | null {
  if (value === null) return null;

  return new Set(value.split(',').map((token) => token.slice(token.lastIndexOf('|') + 1)).filter((code) => code !== ''));
}

/** Parses a token search value such as `status=in-progress,finished`, where a comma means OR. Returns null when it is absent. */
function searchTokens(value: string | null): Set<string> | null {
  if (value === null) return null;

  return new Set(value.split(',').filter((token) => token !== ''));
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json; charset=utf-8', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function sendOutcome(res: ServerResponse, status: number, code: string, diagnostics: string): void {
  sendJson(res, status, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] });
}
