/**
 * An error the user caused and can fix (bad story, config, address, CSV, token).
 * The CLI prints its message as one line and exits non-zero, without a stack trace.
 */
export class UserError extends Error {
  override name = 'UserError';
}
