import type { DemoDataset, DemoPatient } from './patients.ts';

/** Claims the demo shows from the identity assertion; decoded only, never verified. */
export interface AssertedUser {
  readonly sub?: string;
  readonly name?: string;
  readonly email?: string;
  readonly groups?: readonly string[];
}

/** Decodes the payload of the `x-wardgate-assertion` JWT without verifying it; `undefined` when absent or unreadable. */
export function decodeAssertion(header: string | string[] | undefined): AssertedUser | undefined {
  if (typeof header !== 'string') return undefined;

  const parts = header.split('.');
  if (parts.length !== 3) return undefined;

  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return payload !== null && typeof payload === 'object' ? payload as AssertedUser : undefined;
  } catch {
    return undefined;
  }
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

function layout(title: string, user: AssertedUser | undefined, body: string): string {
  const who = user?.sub === undefined ? 'not signed in (no identity assertion)' : escapeHtml(`${user.name ?? user.sub} (${user.sub})`);

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} - Demo EHR</title></head>
<body><header><strong>Demo EHR</strong> (synthetic data only). Signed in as ${who}</header>
<main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}

export function renderPatientList(dataset: DemoDataset, user: AssertedUser | undefined): string {
  const rows = dataset.patients.slice(0, 50).map((patient) =>
    `<li><a href="/patients/${patient.id}">${escapeHtml(`${patient.family}, ${patient.given}`)}</a> (${patient.birthDate})</li>`).join('');

  return layout('Patients', user, `<p>First 50 of ${dataset.patients.length} patients.</p><ul>${rows}</ul>`);
}

/**
 * Renders a patient's page. Records staff see the demographics without the observations, as
 * the demo policy's `records-no-observations` rule keeps them from the FHIR Observation API.
 */
export function renderPatientPage(dataset: DemoDataset, patient: DemoPatient, user: AssertedUser | undefined): string {
  const clinical = !(Array.isArray(user?.groups) && user.groups.includes('records'));
  const observations = dataset.observations.filter((observation) => observation.patientId === patient.id)
    .map((observation) => `<li>${escapeHtml(observation.display)}: ${observation.value} ${escapeHtml(observation.unit)} (${observation.effective})</li>`).join('');
  const observationSection = clinical ? `<ul>${observations}</ul>` : '<p>Observations are not shown to records staff.</p>';

  return layout(`${patient.family}, ${patient.given}`, user, `<p>Born ${patient.birthDate}, ${patient.gender}.</p>
<h2>Observations</h2>${observationSection}
<h2>Clinical note</h2>
<form method="post" action="/notes"><input type="hidden" name="patient" value="${patient.id}">
<textarea name="text" rows="4" cols="60"></textarea><br><button type="submit">Save note</button></form>`);
}

export function renderNoteReceived(patient: string, text: string, user: AssertedUser | undefined): string {
  return layout('Note received', user, `<p>Patient: ${escapeHtml(patient)}</p><pre>${escapeHtml(text)}</pre>`);
}
