import type { IncomingMessage, ServerResponse } from 'node:http';

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

  if (resourceType === 'Patient' && id === undefined) {
    const name = url.searchParams.get('name')?.toLowerCase();
    const matches = dataset.patients.filter((patient) => name === undefined || `${patient.given} ${patient.family}`.toLowerCase().includes(name));
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
      const patients = dataset.patients.filter((patient) => patient.careTeam.includes(participant));
      sendSearchPage(res, url, patients.map(toCareTeamResource));
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

function toPatientResource(patient: DemoPatient): object {
  return {
    resourceType: 'Patient',
    id: patient.id,
    meta: { tag: [{ system: 'urn:wardgate:demo', code: 'synthetic' }] },
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

function toCareTeamResource(patient: DemoPatient): object {
  return {
    resourceType: 'CareTeam',
    id: `ct-${patient.id}`,
    status: 'active',
    subject: { reference: `Patient/${patient.id}` },
    participant: patient.careTeam.map((practitioner) => ({ member: { reference: `Practitioner/${practitioner}` } })),
  };
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json; charset=utf-8', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function sendOutcome(res: ServerResponse, status: number, code: string, diagnostics: string): void {
  sendJson(res, status, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] });
}
