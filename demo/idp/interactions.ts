import type { IncomingMessage, ServerResponse } from 'node:http';

import type Provider from 'oidc-provider';
import type { InteractionDetails } from 'oidc-provider';

import { ACR_MFA, ACR_PASSWORD, checkPassword, type DemoAccount } from './accounts.ts';
import { verifyTotp } from './totp.ts';

const MAX_FORM_BYTES = 4096;

/**
 * Serves the demo IdP's own sign-in pages under `/interaction/<uid>`: GET shows the form,
 * POST checks it. A second factor is asked for when the client sent
 * `acr_values=urn:wardgate:acr:mfa`, `max_age=0` or `prompt=login`.
 */
export async function handleInteraction(provider: Provider, accounts: readonly DemoAccount[], req: IncomingMessage, res: ServerResponse, now: () => number): Promise<void> {
  let details: InteractionDetails;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    sendHtml(res, 400, page('Sign-in expired', '<p>This sign-in has expired. Go back to the application and start again.</p>'));
    return;
  }

  const secondFactor = requiresSecondFactor(details);
  if (req.method === 'GET') {
    sendHtml(res, 200, loginForm(details, secondFactor, prefilledUsername(accounts, details), undefined));
    return;
  }
  if (req.method !== 'POST') {
    res.setHeader('allow', 'GET, POST');
    sendHtml(res, 405, page('Method not allowed', '<p>Use the sign-in form.</p>'));
    return;
  }

  const form = await readForm(req);
  if (form === null) {
    sendHtml(res, 400, page('Invalid form', '<p>The form could not be read. Reload the page and try again.</p>'));
    return;
  }

  const account = checkPassword(accounts, form.get('username') ?? '', form.get('password') ?? '');
  if (account === undefined) {
    sendHtml(res, 401, loginForm(details, secondFactor, form.get('username') ?? '', 'Wrong username or password.'));
    return;
  }
  if (secondFactor && !verifyTotp(account.totp_secret, form.get('code') ?? '', now())) {
    sendHtml(res, 401, loginForm(details, secondFactor, account.username, 'Wrong or expired authenticator code.'));
    return;
  }

  await provider.interactionFinished(req, res, {
    login: {
      accountId: account.subject,
      acr: secondFactor ? ACR_MFA : ACR_PASSWORD,
      amr: secondFactor ? ['pwd', 'otp', 'mfa'] : ['pwd'],
      ts: Math.floor(now() / 1000),
    },
  }, { mergeWithLastSubmission: false });
}

/**
 * Asks for the code when MFA is requested or a fresh sign-in is forced. oidc-provider turns
 * `max_age=0` into `prompt=login` before the interaction starts, so `prompt=login` counts too.
 */
function requiresSecondFactor(details: InteractionDetails): boolean {
  const acrValues = typeof details.params.acr_values === 'string' ? details.params.acr_values.split(' ') : [];
  const prompts = typeof details.params.prompt === 'string' ? details.params.prompt.split(' ') : [];
  return acrValues.includes(ACR_MFA) || prompts.includes('login');
}

function prefilledUsername(accounts: readonly DemoAccount[], details: InteractionDetails): string {
  const subject = details.session?.accountId;
  return accounts.find((a) => a.subject === subject)?.username ?? '';
}

function loginForm(details: InteractionDetails, secondFactor: boolean, username: string, error: string | undefined): string {
  const codeField = secondFactor
    ? '<label>Authenticator code <input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required></label>'
    : '';
  const body = [
    error === undefined ? '' : `<p role="alert">${escapeHtml(error)}</p>`,
    secondFactor ? '<p>This action needs your password and your authenticator code.</p>' : '',
    `<form method="post" action="/interaction/${escapeHtml(details.uid)}">`,
    `<label>Username <input name="username" autocomplete="username" value="${escapeHtml(username)}" required></label>`,
    '<label>Password <input name="password" type="password" autocomplete="current-password" required></label>',
    codeField,
    '<button type="submit">Sign in</button>',
    '</form>',
  ].join('\n');

  return page('Wardgate demo sign-in', body);
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>\n${body}\n</body></html>`;
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-security-policy', "default-src 'none'; form-action 'self' https:; frame-ancestors 'none'");
  res.end(html);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Reads an urlencoded form of at most 4 KiB; returns null when it is larger or has a repeated field. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) {
      return null;
    }
    chunks.push(chunk as Buffer);
  }

  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  const names = [...form.keys()];
  return new Set(names).size === names.length ? form : null;
}
