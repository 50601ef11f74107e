// Reader-typed addresses are checked with validator's isEmail (syntax, IDN domains) after
// the rules that matter for safety: no display names, no line breaks (header injection),
// RFC 5321 lengths. One mailbox must have one spelling, or look-alikes become separate
// subscribers all delivered to the same person: compatibility forms (fullwidth letters)
// are folded, invisible characters dropped, and the domain kept in its one Unicode form.
// The local part keeps its case because some servers treat it case-sensitively
// (uniqueness is case-insensitive in the db).
import { domainToASCII, domainToUnicode } from 'node:url';
import validator from 'validator';
import { UserError } from '../errors.ts';

export class InvalidEmailError extends UserError {}

const MAX_LENGTH = 254;

// Zero-width space, non-joiner and joiner, word joiner, byte-order mark, soft hyphen: they
// show as nothing, so a pasted address carrying one is the address without it.
const INVISIBLE = /[\u200b-\u200d\u2060\ufeff\u00ad]/g;

export function normalizeEmail(input: unknown): string {
  if (typeof input !== 'string') throw new InvalidEmailError('an email address is required');
  const email = input.normalize('NFKC').replace(INVISIBLE, '').trim();
  const shown = JSON.stringify(email.length > 80 ? email.slice(0, 80) + '…' : email);
  if (email === '') throw new InvalidEmailError('an email address is required');
  if (/[\r\n\0]/.test(email)) throw new InvalidEmailError(`${shown} contains a line break; enter just the address`);
  if (/[<>]/.test(email) || /\s/.test(email))
    throw new InvalidEmailError(
      `${shown} is not a plain address; enter just name@example.org, without a name or spaces`,
    );
  const at = email.lastIndexOf('@');
  if (at <= 0 || at === email.length - 1)
    throw new InvalidEmailError(`${shown} is not an email address (expected name@example.org)`);
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  // Length limits apply on the wire, where an IDN domain travels as punycode.
  const asciiDomain = domainToASCII(domain);
  if (!asciiDomain) throw new InvalidEmailError(`${shown} has an invalid domain`);
  if (local.length > 64 || local.length + 1 + asciiDomain.length > MAX_LENGTH)
    throw new InvalidEmailError(`${shown} is too long for an email address`);
  if (
    !validator.isEmail(`${local}@${asciiDomain}`, {
      allow_display_name: false,
      require_tld: true,
      allow_ip_domain: false,
      allow_utf8_local_part: false,
    })
  ) {
    throw new InvalidEmailError(`${shown} is not a valid email address`);
  }
  // Punycode and Unicode spellings (and UTS #46 case and width folds) meet in one form.
  return `${local}@${domainToUnicode(asciiDomain)}`;
}
