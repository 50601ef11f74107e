// Headers every outgoing email carries (promise 5): one-click unsubscribe per RFC 8058,
// a List-Id filters can match, and a Message-ID that is the same on every retry of the same message so a
// receiving server (or reader) can collapse a duplicate left by a crash.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import { encodeWord } from 'nodemailer/lib/mime-funcs/index.js';
import type { Config } from '../config.ts';
import type { FilledEmail } from '../render/email.ts';
import type { NoticeKind } from '../store/notices.ts';
import type { OutgoingMail } from './transport.ts';

/** The domain of mail.from (else of baseUrl): Message-IDs and List-Id are named after it. */
export function senderDomain(config: Config): string {
  const parsed = addressparser(config.mail.from, { flatten: true })[0];
  const address = parsed && 'address' in parsed ? parsed.address : '';
  return address.split('@')[1] || new URL(config.baseUrl).hostname;
}

/** The kinds of email a reader gets; headers differ between them. */
export type MailKind = NoticeKind | 'installment';

/** Gmail's Feedback Loop groups complaints by this, the right-most field of Feedback-ID (5–15 characters). */
const FEEDBACK_SENDER_ID = 'feuilleton';

/** Latin letters that Unicode decomposition does not reduce to ASCII, spelled the usual way. */
const LATIN_EXTRA: Record<string, string> = {
  ß: 'ss',
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  đ: 'd',
  ð: 'd',
  þ: 'th',
  ł: 'l',
  ı: 'i',
};
const SLUG_MAX = 64;

/**
 * The list's label: the title's Latin letters and digits, accents dropped. Letters of other
 * scripts would be lost, and with them what tells two titles apart, so a title that has
 * any gets a short hash of itself too (alone when it has no Latin letters at all).
 * Titles of plain ASCII keep the label earlier versions made.
 */
export function listSlug(title: string): string {
  const folded = title
    .toLowerCase()
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .replace(/[ßæœøđðþłı]/g, (c) => LATIN_EXTRA[c]!);
  let slug = folded.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  if (slug.length > SLUG_MAX) slug = slug.slice(0, SLUG_MAX + 1).replace(/-[^-]*$/, '');
  if (!/[\p{L}\p{N}]/u.test(folded.replace(/[a-z0-9]/g, ''))) return slug;
  const hash = createHash('sha256').update(title.normalize('NFC')).digest('hex').slice(0, 8);
  return slug ? `${slug}-${hash}` : `s${hash}`;
}

/** RFC 5322 atext and spaces: a phrase made only of these needs no quoting. */
const ATOMS = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$/;

/**
 * A display name as a header phrase: as typed when it is atoms only, else RFC 2047 encoded
 * words (for specials such as ":" too: nodemailer would encode a quoted string, and with it
 * the whole value). Either way it is ASCII, so nodemailer leaves the `<id>` alone.
 */
function phrase(name: string): string {
  const clean = name.replace(/[\r\n]+/g, ' ').trim();
  return ATOMS.test(clean) && !clean.includes('=?') ? clean : encodeWord(clean, 'Q', 52);
}

/** `Title <label.domain>` (RFC 2919); only the title is ever encoded, so filters always see the id. */
export function listId(config: Config, title: string): string {
  if (config.mail.listId) {
    const m = /^\s*(.*?)\s*<([^<>]+)>\s*$/.exec(config.mail.listId);
    return m ? `${m[1] ? `${phrase(m[1].replace(/^"|"$/g, ''))} ` : ''}<${m[2]}>` : config.mail.listId;
  }
  return `${phrase(title)} <${listSlug(title)}.${senderDomain(config)}>`;
}

/**
 * One-click unsubscribe over HTTPS only (RFC 8058): a mailto: target would need a mailbox
 * read by something that unsubscribes, and feuilleton has none. Confirmation and welcome
 * answer a form, so they say they are automatic (RFC 3834), which keeps vacation replies
 * away. No `Precedence: bulk`: Gmail's sender guidelines dropped it (see README, "Email").
 */
export function listHeaders(
  config: Config,
  title: string,
  unsubscribeUrl: string,
  kind: MailKind,
): Record<string, string> {
  const headers: Record<string, string> = {
    'List-Unsubscribe': `<${unsubscribeUrl}>`,
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    'List-Id': listId(config, title),
  };
  if (kind === 'confirm' || kind === 'welcome') headers['Auto-Submitted'] = 'auto-generated';
  if (config.mail.feedbackId) headers['Feedback-ID'] = `${kind}:${listSlug(title)}:${FEEDBACK_SENDER_ID}`;
  return headers;
}

/**
 * Message-IDs: `<kind.number.reader.story.instance@domain>`. The instance is random per
 * database and the story part follows the title, so two serials (or two installs of one)
 * never share an id and a receiving server never drops one as a duplicate of another. The
 * reader part is keyed from the reader's random feed token, not the row id, so ids reveal
 * nothing about the list; every part is stable, so a retry carries the same id.
 */
export class MessageIds {
  private readonly tail: string;

  constructor(private readonly opts: { instance: string; storyTitle: string; domain: string }) {
    this.tail = `${storyTag(opts.storyTitle)}.${opts.instance}@${opts.domain}`;
  }

  installment(reader: { feedToken: string }, number: number): string {
    return `<installment.${number}.${this.readerTag(reader.feedToken)}.${this.tail}>`;
  }

  /** `nonce` is drawn once per queued notice, so retries of that notice keep its id. */
  notice(kind: NoticeKind, nonce: string): string {
    return `<${kind}.${nonce}.${this.tail}>`;
  }

  /** A test send is a new message each time: receiving servers would drop a repeat. */
  test(number: number): string {
    return `<test.${number}.${randomBytes(6).toString('hex')}.${this.tail}>`;
  }

  private readerTag(feedToken: string): string {
    return createHmac('sha256', this.opts.instance)
      .update(feedToken)
      .digest('base64url')
      .slice(0, 12)
      .replace(/[-_]/g, 'x');
  }
}

/** The list's label, short enough to keep a Message-ID on one header line. */
function storyTag(title: string): string {
  const slug = listSlug(title);
  return slug.length <= STORY_TAG_MAX
    ? slug
    : slug.slice(0, STORY_TAG_MAX + 1).replace(/-[^-]*$/, '') || slug.slice(0, STORY_TAG_MAX);
}
const STORY_TAG_MAX = 24;

/**
 * Addresses filled emails to the list's readers. The headers that do not depend on the
 * reader (List-Id, Feedback-ID…) are worked out once per kind, not once per message.
 */
export class ListMail {
  private readonly fixed = new Map<MailKind, Record<string, string>>();

  constructor(
    private readonly config: Config,
    private readonly title: string,
  ) {}

  address(filled: FilledEmail, to: string, unsubscribeUrl: string, id: string, kind: MailKind): OutgoingMail {
    let fixed = this.fixed.get(kind);
    if (!fixed) {
      const all = listHeaders(this.config, this.title, '', kind);
      delete all['List-Unsubscribe'];
      this.fixed.set(kind, (fixed = all));
    }
    return {
      to,
      subject: filled.subject,
      html: filled.html,
      text: filled.text,
      textEncoding: filled.textEncoding,
      messageId: id,
      // In listHeaders' order: the reader's link first.
      headers: { 'List-Unsubscribe': `<${unsubscribeUrl}>`, ...fixed },
    };
  }
}
