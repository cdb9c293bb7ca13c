import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { chromium, type Page } from 'playwright-core';
import { startTestStack, type TestStack } from '../e2e/support.ts';

// A real browser through the demo: sign-in, ordinary work, a second-factor step-up in the
// middle of a form POST whose body must reach the upstream intact, and logout. Debian's
// chromium package provides the browser; .ci/run installs it when it is missing.
const CHROMIUM = process.env.WARDGATE_CHROMIUM ?? '/usr/bin/chromium';

// The example policy in which saving a note needs a fresh second factor.
const POLICY = fileURLToPath(new URL('../../policy/examples/notes-step-up.yaml', import.meta.url));

if (!existsSync(CHROMIUM)) {
  t.fail(`Chromium not found at ${CHROMIUM}; install Debian's chromium package (apt-get install chromium) or set WARDGATE_CHROMIUM`);
} else {
  const stack: TestStack = await startTestStack({ policyFile: POLICY });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  t.teardown(async () => {
    await browser.close();
    await stack.close();
  });

  // The demo's certificates come from a local CA the browser does not know.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const physician = stack.idp.accounts.find((account) => account.username === 'physician')!;
  const idpOrigin = new URL(stack.idp.issuer).origin;
  const wardgateOrigin = new URL(stack.url).origin;

  await t.test('sign-in goes through the IdP and lands on the application', async (t) => {
    await page.goto(`${stack.url}/`);
    t.equal(new URL(page.url()).origin, idpOrigin, 'an anonymous browser is sent to the IdP');
    await signInForm(page, { username: 'physician', password: physician.password });
    await page.waitForURL((url) => url.origin === wardgateOrigin);
    t.equal(new URL(page.url()).pathname, '/');
    t.match(await page.textContent('body'), /First 50 of \d+ patients/);
    const cookies = await context.cookies(stack.url);
    const session = cookies.find((cookie) => cookie.name === '__Host-wardgate_session');
    t.ok(session, 'the session cookie is set');
    t.equal(session?.secure, true);
    t.equal(session?.httpOnly, true);
  });

  await t.test("Wardgate saw Chromium's connection use X25519MLKEM768", async (t) => {
    const groups = stack.spans.getFinishedSpans().map((span) => span.attributes['wardgate.tls.group']).filter(Boolean);
    t.ok(groups.length > 0, 'request spans carry the TLS group');
    t.same([...new Set(groups)], ['X25519MLKEM768']);
  });

  let patientPath = '';
  await t.test('ordinary work: open a patient record', async (t) => {
    await page.click('ul li a');
    await page.waitForURL(/\/patients\//);
    patientPath = new URL(page.url()).pathname;
    t.match(await page.textContent('h2'), /Observations/);
    t.equal(new URL(page.url()).origin, wardgateOrigin);
  });

  const note = 'Pt reports chest pain 3/10 since 04:00.\nPlan: ECG, troponin x2 & review at 10:00 — "urgent".';
  await t.test('a note saved mid step-up reaches the upstream intact after the second factor', async (t) => {
    t.ok(patientPath, 'a patient page is open');
    await page.fill('textarea[name=text]', note);
    await page.click('button[type=submit]');
    await page.waitForURL((url) => url.origin === idpOrigin);
    t.ok(await page.isVisible('input[name=code]'), 'the IdP asks for the second factor');
    await signInForm(page, { password: physician.password, code: stack.idp.totp(physician.totp_secret, Date.now()) });
    // Wardgate answers the replayed POST at /.wardgate/replay with the upstream's response.
    await page.waitForURL((url) => url.origin === wardgateOrigin, { timeout: 20_000 });
    t.match(await page.textContent('h1'), /Note received/);
    t.equal(await page.textContent('pre'), note, 'the note text arrived byte for byte');
    t.match(await page.textContent('body'), new RegExp(`Patient: ${patientPath.split('/').pop()}`));
  });

  await t.test('logout ends the session', async (t) => {
    await page.goto(`${stack.url}/.wardgate/logout`);
    await page.click('button[type=submit]');
    // RP-initiated logout may stop at the IdP's own confirmation page.
    if (new URL(page.url()).origin === idpOrigin && (await page.$('button[type=submit], button[autofocus]')) !== null) {
      await page.click('button[type=submit], button[autofocus]');
    }
    const cookies = await context.cookies(stack.url);
    t.notOk(cookies.some((cookie) => cookie.name === '__Host-wardgate_session' && cookie.value !== ''), 'the session cookie is cleared');
    await page.goto(`${stack.url}/`);
    t.equal(new URL(page.url()).origin, idpOrigin, 'the next visit must sign in again');
    t.ok(await page.isVisible('input[name=password]'), 'the IdP asks for the password again');
  });
}

/** Fills whichever of the IdP form's fields are present and submits it. */
async function signInForm(page: Page, fields: { username?: string; password: string; code?: string }): Promise<void> {
  if (fields.username !== undefined && (await page.isEditable('input[name=username]'))) await page.fill('input[name=username]', fields.username);
  await page.fill('input[name=password]', fields.password);
  if (fields.code !== undefined) await page.fill('input[name=code]', fields.code);
  const before = page.url();
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.href !== before, { timeout: 20_000 });
  await page.waitForLoadState('load');
}
