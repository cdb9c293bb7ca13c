export type BreakGlassErrorCode =
  | 'WG_BREAK_GLASS_REQUIRED'
  | 'WG_BREAK_GLASS_NO_SESSION'
  | 'WG_BREAK_GLASS_METHOD_NOT_ALLOWED'
  | 'WG_BREAK_GLASS_INVALID_BODY'
  | 'WG_BREAK_GLASS_OFFER_UNKNOWN'
  | 'WG_BREAK_GLASS_CSRF_REJECTED'
  | 'WG_BREAK_GLASS_INVALID_REASON'
  | 'WG_BREAK_GLASS_INVALID_JUSTIFICATION'
  | 'WG_NOTICE_UNKNOWN';

/** HTTP status of each code, so responses need no table of their own. */
export const BREAK_GLASS_ERROR_STATUS: Readonly<Record<BreakGlassErrorCode, number>> = Object.freeze({
  WG_BREAK_GLASS_REQUIRED: 403,
  WG_BREAK_GLASS_NO_SESSION: 403,
  WG_BREAK_GLASS_METHOD_NOT_ALLOWED: 405,
  WG_BREAK_GLASS_INVALID_BODY: 400,
  WG_BREAK_GLASS_OFFER_UNKNOWN: 403,
  WG_BREAK_GLASS_CSRF_REJECTED: 403,
  WG_BREAK_GLASS_INVALID_REASON: 400,
  WG_BREAK_GLASS_INVALID_JUSTIFICATION: 400,
  WG_NOTICE_UNKNOWN: 403,
});

/** A rejected break-glass claim or notice acknowledgement; nothing was granted or recorded. */
export class BreakGlassError extends Error {
  readonly code: BreakGlassErrorCode;
  readonly status: number;

  constructor(code: BreakGlassErrorCode, message: string) {
    super(message);
    this.name = 'BreakGlassError';
    this.code = code;
    this.status = BREAK_GLASS_ERROR_STATUS[code];
  }
}
