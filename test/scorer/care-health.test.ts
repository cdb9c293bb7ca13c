import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { CARE_DEFAULTS } from '../../proxy/config/scorer-config.ts';
import { rawRequest, startTestStack } from '../e2e/support.ts';

type CareHealth = { source: string; last_reload_error?: string | null };

async function careHealth(stack: Parameters<typeof rawRequest>[0]): Promise<CareHealth> {
  const response = await rawRequest(stack, '/.wardgate/health');
  return (JSON.parse(response.body) as { care: CareHealth }).care;
}

/** Polls for up to 30 s of wall time: the file watcher is slow on a loaded machine. */
async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('condition not met within 30 s');
}

t.test('health names the FHIR care source of the demo', async (t) => {
  const stack = await startTestStack();
  t.teardown(() => stack.close());

  t.same(await careHealth(stack), { source: 'fhir' });
});

t.test('health shows the last reload error of a care panel', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-care-health-'));
  const panel = join(dir, 'panel.yaml');
  writeFileSync(panel, 'practitioners:\n  demo-physician: [p-0001]\n');
  const stack = await startTestStack({ configure: (config) => ({ ...config, care: { ...CARE_DEFAULTS, source: 'panel', panel_file: panel } }) });
  t.teardown(async () => {
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });

  t.same(await careHealth(stack), { source: 'panel', last_reload_error: null });

  writeFileSync(join(dir, 'next.tmp'), 'practitioners: [not, a, mapping]\n');
  renameSync(join(dir, 'next.tmp'), panel);
  await t.resolves(waitFor(async () => (await careHealth(stack)).last_reload_error !== null));
  t.match((await careHealth(stack)).last_reload_error, /^Invalid care panel .*practitioners: expected a mapping/);

  writeFileSync(join(dir, 'next.tmp'), 'practitioners:\n  demo-physician: [p-0002]\n');
  renameSync(join(dir, 'next.tmp'), panel);
  await t.resolves(waitFor(async () => (await careHealth(stack)).last_reload_error === null), 'a good file clears the error');
});
