// Reader-typed addresses are checked with validator's isEmail (syntax, IDN domains) after
// the rules that matter for safety: no display names, no line breaks (header injection),
// RFC 5321 lengths. The domain is lower-cased; the local part is kept as typed because
// some servers treat it case-sensitively (uniqueness is case-insensitive in the db).
import { domainToASCII } from 'node:url';
import validator from 'validator';
import { UserError } from '../errors.ts';

export class InvalidEmailError extends UserError {}

const MAX_LENGTH = 254;

export function normalizeEmail(input: unknown): string {
  if (typeof input !== 'string') throw new InvalidEmailError('an email address is required');
  const email = input.trim();
  const shown = JSON.stringify(email.length > 80 ? email.slice(0, 80) + '…' : email);
  if (email === '') throw new InvalidEmailError('an email address is required');
  if (/[\r\n\0]/.test(email)) throw new InvalidEmailError(`${shown} contains a line break; enter just the address`);
  if (/[<>]/.test(email) || /\s/.test(email)) throw new InvalidEmailError(`${shown} is not a plain address; enter just name@example.org, without a name or spaces`);
  const at = email.lastIndexOf('@');
  if (at <= 0 || at === email.length - 1) throw new InvalidEmailError(`${shown} is not an email address (expected name@example.org)`);
  const local = email.slice(0, at);
  const domain = email.slice(at + 1).toLowerCase();
  // Length limits apply on the wire, where an IDN domain travels as punycode.
  const asciiDomain = domainToASCII(domain);
  if (!asciiDomain) throw new InvalidEmailError(`${shown} has an invalid domain`);
  if (local.length > 64 || local.length + 1 + asciiDomain.length > MAX_LENGTH) throw new InvalidEmailError(`${shown} is too long for an email address`);
  if (!validator.isEmail(`${local}@${asciiDomain}`, { allow_display_name: false, require_tld: true, allow_ip_domain: false, allow_utf8_local_part: false })) {
    throw new InvalidEmailError(`${shown} is not a valid email address`);
  }
  return `${local}@${domain}`;
}
