// Headers every outgoing email carries (promise 5): one-click unsubscribe per RFC 8058,
// a List-Id, and a Message-ID that is the same on every retry of the same message so a
// receiving server (or reader) can collapse a duplicate left by a crash.
import { createHash } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import type { App } from '../app.ts';
import type { Config } from '../config.ts';
import type { FilledEmail } from '../render/email.ts';
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

/** `<kind.part.subscriber.hash@domain>`: deterministic for one logical message. */
export function messageId(config: Config, parts: Array<string | number>): string {
  const digest = createHash('sha256').update(parts.join('|')).update(config.baseUrl).digest('hex').slice(0, 12);
  return `<${parts.join('.')}.${digest}@${senderDomain(config)}>`;
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
