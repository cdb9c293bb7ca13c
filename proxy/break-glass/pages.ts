import type { ServerResponse } from 'node:http';
import { escapeHtml } from '../enforce/responses.ts';

/** Path that receives break-glass claims (and the step-up choice on a combined page). */
export const BREAK_GLASS_PATH = '/.wardgate/break-glass';
/** Path that receives notice acknowledgements. */
export const NOTICE_PATH = '/.wardgate/notice';

export interface BreakGlassPageInput {
  readonly offer: string;
  readonly csrf: string;
  readonly reasonCodes: readonly string[];
  readonly ttlSeconds: number;
  readonly minLength: number;
  readonly maxLength: number;
  readonly incidentId: string;
  /** Shows a second-factor button as well, for a step-up decision that offers break-glass. */
  readonly stepUp: boolean;
  readonly error?: string;
  readonly justification?: string;
  readonly reasonCode?: string;
}

/** Sends the page that explains the block and offers emergency access; the status is 403, or 400 when re-shown after an invalid claim. */
export function sendBreakGlassPage(res: ServerResponse, input: BreakGlassPageInput): void {
  const minutes = Math.max(1, Math.round(input.ttlSeconds / 60));
  const options = input.reasonCodes
    .map((code) => `<option value="${escapeHtml(code)}"${code === input.reasonCode ? ' selected' : ''}>${escapeHtml(code)}</option>`)
    .join('');
  const hidden = `<input type="hidden" name="offer" value="${escapeHtml(input.offer)}"><input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}">`;
  const title = input.stepUp ? 'Additional verification needed' : 'Access blocked: emergency access available';
  const intro = input.stepUp
    ? 'This request needs a second factor. Verify now, or, if a patient needs care and you cannot verify, open emergency access.'
    : 'The access policy blocks this request. If a patient needs care now, you can open emergency access ("break the glass").';

  const body = [
    `<h1>${title}</h1>`,
    `<p>${escapeHtml(intro)}</p>`,
    input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : '',
    input.stepUp ? `<form method="post" action="${BREAK_GLASS_PATH}">${hidden}<input type="hidden" name="choice" value="step_up"><button type="submit">Verify with a second factor</button></form><h2>Emergency access</h2>` : '',
    `<p>Emergency access lasts ${minutes} minutes for this application. Your name, the reason and your justification are recorded, and the security team reviews every emergency access.</p>`,
    `<form method="post" action="${BREAK_GLASS_PATH}">${hidden}`,
    `<p><label>Reason <select name="reason_code" required>${options}</select></label></p>`,
    `<p><label>Justification (${input.minLength} to ${input.maxLength} characters)<br><textarea name="justification" required minlength="${input.minLength}" maxlength="${input.maxLength}" rows="4" cols="60">${escapeHtml(input.justification ?? '')}</textarea></label></p>`,
    `<p><button type="submit">Open emergency access</button></p></form>`,
    `<p>If you do not need emergency access, call the IT service desk with this incident id: <code>${escapeHtml(input.incidentId)}</code></p>`,
  ];
  sendHtml(res, input.error ? 400 : 403, title, body, input.incidentId);
}

/** Sends the interstitial that informs a clinician that the access is recorded and may be reviewed. */
export function sendNoticePage(res: ServerResponse, input: { offer: string; csrf: string; message: string; incidentId: string }): void {
  const body = [
    '<h1>This access is recorded</h1>',
    `<p>${escapeHtml(input.message)}</p>`,
    `<form method="post" action="${NOTICE_PATH}"><input type="hidden" name="offer" value="${escapeHtml(input.offer)}"><input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}">`,
    '<p><button type="submit">Continue</button></p></form>',
  ];
  sendHtml(res, 200, 'This access is recorded', body, input.incidentId);
}

function sendHtml(res: ServerResponse, status: number, title: string, body: readonly string[], incidentId: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-wardgate-incident': incidentId,
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https:; frame-ancestors 'none'",
  });
  res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#eee;padding:.1rem .3rem}.error{color:#a00}</style></head>
<body>
${body.filter(Boolean).join('\n')}
</body></html>
`);
}
