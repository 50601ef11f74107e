// Headers every outgoing email carries (promise 5): one-click unsubscribe per RFC 8058,
// a List-Id, and a Message-ID that is the same on every retry of the same message so a
// receiving server (or reader) can collapse a duplicate left by a crash.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import type { App } from '../app.ts';
import type { Config } from '../config.ts';
import type { FilledEmail } from '../render/email.ts';
import type { NoticeKind } from '../store/notices.ts';
import type { OutgoingMail } from './transport.ts';

// Asked twice for every message of a send; parsing the From address each time showed in profiles.
const domains = new WeakMap<Config, string>();

export function senderDomain(config: Config): string {
  let domain = domains.get(config);
  if (domain === undefined) {
    const parsed = addressparser(config.mail.from, { flatten: true })[0];
    const address = parsed && 'address' in parsed ? parsed.address : '';
    domain = address.split('@')[1] || new URL(config.baseUrl).hostname;
    domains.set(config, domain);
  }
  return domain;
}

export function listId(config: Config, title: string): string {
  if (config.mail.listId) return config.mail.listId;
  const slug = title.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'story';
  return `${title.replace(/[<>"\r\n]/g, '')} <${slug}.${senderDomain(config)}>`;
}

function listHeaders(config: Config, title: string, unsubscribeUrl: string): Record<string, string> {
  const targets = [`<${unsubscribeUrl}>`];
  if (config.mail.unsubscribeMailto) targets.push(`<mailto:${config.mail.unsubscribeMailto}?subject=unsubscribe>`);
  return {
    'List-Unsubscribe': targets.join(', '),
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    'List-Id': listId(config, title),
  };
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

  constructor(
    private readonly opts: { instance: string; storyTitle: string; domain: string },
  ) {
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
    return createHmac('sha256', this.opts.instance).update(feedToken).digest('base64url').slice(0, 12).replace(/[-_]/g, 'x');
  }
}

/** A short, stable, id-safe tag for the story: its title's Latin letters, else a hash of it. */
function storyTag(title: string): string {
  const slug = title.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const short = slug.length <= 24 ? slug : slug.slice(0, 24).replace(/-[^-]*$/, '');
  return short || `s${createHash('sha256').update(title).digest('hex').slice(0, 8)}`;
}

/** A filled email addressed to one reader of the list, with the list's headers. */
export function listMail(app: App, filled: FilledEmail, to: string, unsubscribeUrl: string, id: string): OutgoingMail {
  return {
    to,
    subject: filled.subject,
    html: filled.html,
    text: filled.text,
    textEncoding: filled.textEncoding,
    messageId: id,
    headers: listHeaders(app.config, app.info.title, unsubscribeUrl),
  };
}
