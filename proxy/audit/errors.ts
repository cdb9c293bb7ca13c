/**
 * Coded errors of the audit trail.
 *
 * | code | when |
 * | --- | --- |
 * | `WG_AUDIT_INVALID_OPTION` | an audit option is missing or out of range (raised at start-up) |
 * | `WG_AUDIT_DIR_UNUSABLE` | the audit folder cannot be created, read or written |
 * | `WG_AUDIT_DIR_LOCKED` | another running process writes the same instance's trail in this folder |
 * | `WG_AUDIT_KEY_INVALID` | a signing key or public key file is unreadable or malformed |
 * | `WG_AUDIT_SIGNING_FAILED` | the signing worker failed to sign a checkpoint |
 * | `WG_AUDIT_WRITE_FAILED` | the close could not write every record, or its last fsync failed |
 */
export type AuditErrorCode =
  | 'WG_AUDIT_INVALID_OPTION'
  | 'WG_AUDIT_DIR_UNUSABLE'
  | 'WG_AUDIT_DIR_LOCKED'
  | 'WG_AUDIT_KEY_INVALID'
  | 'WG_AUDIT_SIGNING_FAILED'
  | 'WG_AUDIT_WRITE_FAILED';

/** An error raised by the audit trail, with a stable code. */
export class AuditError extends Error {
  readonly code: AuditErrorCode;

  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditError';
    this.code = code;
  }
}
