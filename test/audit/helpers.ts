import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readTrustedPublicKeys, KEY_FILES } from '../../proxy/audit/keys.ts';
import { verifyAuditDir, type VerifyReport } from '../../proxy/audit/verify.ts';
import { openAuditTrail, type AuditTrail, type AuditTrailOptions } from '../../proxy/audit/writer.ts';
import { waitUntil } from '../wait.ts';

export const PATIENT_KEY = randomBytes(32);

/** Creates an empty temporary folder, removed by the returned cleanup. */
export function temporaryDir(label: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `wgtest-audit-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Opens a trail in `dir` with small limits suited to tests; `overrides` replace any option. */
export function openTestTrail(dir: string, overrides: Partial<AuditTrailOptions> = {}): Promise<AuditTrail> {
  return openAuditTrail({
    dir,
    instanceId: 'test1',
    keyDir: path.join(dir, 'keys'),
    checkpointEvery: 1000,
    checkpointIntervalMs: 60_000,
    maxFileBytes: 1024 * 1024,
    fsyncIntervalMs: 200,
    patientKey: PATIENT_KEY,
    ...overrides,
  });
}

/** Appends `count` decision entries with distinct trace ids and patient paths. */
export function appendDecisions(trail: AuditTrail, count: number, from = 0): void {
  for (let i = from; i < from + count; i++) {
    trail.append({ kind: 'decision', trace_id: `trace-${i}`, path: `/fhir/Patient/pat-${i}`, action: 'allow', rule: 'default', reasons: [], risk: 0.1 });
  }
}

/** Verifies `dir` against the keys in its `keys` folder. */
export async function verify(dir: string, allowOpenTail = false): Promise<VerifyReport> {
  const trustedKeys = await readTrustedPublicKeys(path.join(dir, 'keys', KEY_FILES.publicKeys));
  return verifyAuditDir(dir, { trustedKeys, allowOpenTail });
}

/** Returns the trail files of `dir`, sorted by name. */
export function trailFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.jsonl')).sort();
}

/** Reads a file's complete lines (without the final newline). */
export function readLines(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
}

export function writeLines(file: string, lines: string[]): void {
  writeFileSync(file, `${lines.join('\n')}\n`);
}

/** Copies a finished trail folder, so each tamper case starts from the same original. */
export function copyTrail(source: string, label: string): { dir: string; remove: () => void } {
  const copy = temporaryDir(label);
  cpSync(source, copy.dir, { recursive: true });
  return copy;
}

/** Returns the 1-based line numbers of a file's records of one kind. */
export function linesOfKind(file: string, kind: string): number[] {
  return readLines(file).flatMap((line, index) => (JSON.parse(line).kind === kind ? [index + 1] : []));
}

/** Waits until the trail has appended record `seq` (checkpoints arrive when the worker has signed them). */
export async function waitForSeq(trail: AuditTrail, seq: number): Promise<void> {
  if (!(await waitUntil(() => trail.seq >= seq, 60_000, 25))) throw new Error(`trail stopped at seq ${trail.seq}, expected ${seq} within 60 s`);
}
