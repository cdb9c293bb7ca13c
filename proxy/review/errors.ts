export type ReviewErrorCode =
  | 'WG_REVIEW_INVALID_OPTION'
  | 'WG_REVIEW_ENTRY_NOT_FOUND'
  | 'WG_REVIEW_INVALID_LABEL'
  | 'WG_REVIEW_NOTE_MISSING'
  | 'WG_REVIEW_ALREADY_LABELLED'
  | 'WG_REVIEW_UNAVAILABLE';

/** A coded error of the review queue and its CLI; the message names the value and the fix. */
export class ReviewError extends Error {
  readonly code: ReviewErrorCode;

  constructor(code: ReviewErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ReviewError';
    this.code = code;
  }
}
