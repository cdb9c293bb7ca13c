/**
 * Coded errors of the care-relationship sources. They are raised at start-up or by a reload;
 * on the request path the sources return "unknown" instead of throwing.
 *
 * | code | when |
 * | --- | --- |
 * | `WG_CARE_INVALID_OPTION` | a source option (file, base URL, TTL) is missing or invalid |
 * | `WG_CARE_PANEL_NOT_FOUND` | the panel file cannot be read |
 * | `WG_CARE_PANEL_INVALID` | the panel file is not YAML or JSON of the documented shape |
 * | `WG_CARE_FETCH_FAILED` | the FHIR server did not respond, returned an error status or sent an invalid Bundle |
 */
export type CareErrorCode = 'WG_CARE_INVALID_OPTION' | 'WG_CARE_PANEL_NOT_FOUND' | 'WG_CARE_PANEL_INVALID' | 'WG_CARE_FETCH_FAILED';

/** An error of a care-relationship source, with a stable code and the value that was wrong. */
export class CareSourceError extends Error {
  readonly code: CareErrorCode;

  constructor(code: CareErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CareSourceError';
    this.code = code;
  }
}
