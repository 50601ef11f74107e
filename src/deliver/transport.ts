// One way out for every email. With an SMTP URL it is a pooled nodemailer SMTP transport
// (rate limit, DKIM); without one it is the local outbox: each message is written as a
// real .eml file plus a .json sidecar the web outbox page reads, so a newcomer can follow
// confirmation links with no mail server at all. In production the outbox is refused
// unless chosen by name, and a DKIM key is test-signed before either is built.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { domainToASCII } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import DKIM from 'nodemailer/lib/dkim/index.js';
import type MailMessage from 'nodemailer/lib/mailer/mail-message.js';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type { Config } from '../config.ts';
import type { TextEncoding } from '../render/email.ts';
import { ConfigError } from '../config.ts';
import { UserError } from '../errors.ts';
import { loadDkimKey, nodemailerDkim } from './dkim.ts';
import { RateGate, type GateClock } from './rate-gate.ts';

export interface OutgoingMail {
  to: string;
  subject: string;
  html: string;
  text: string;
  /** Without angle brackets' contents being random per attempt: retries keep the same id. */
  messageId: string;
  headers?: Record<string, string>;
  /** Decided once per compiled email (see FilledEmail); nodemailer otherwise decides per message. */
  textEncoding?: TextEncoding;
}

export interface SendResult {
  messageId: string;
  response: string;
  /** Bytes handed to the server before its reply, dot-stuffing and end marker included. */
  size?: number;
}

export interface MailTransport {
  readonly kind: 'smtp' | 'outbox';
  /** Where mail goes, for logs: the SMTP host or the outbox folder. Never includes credentials. */
  readonly description: string;
  send(mail: OutgoingMail): Promise<SendResult>;
  /**
   * A message already built (see compose.ts), to one recipient. Only where it pays: the
   * outbox keeps composing each message, as its viewer reads the parts. Once the promise
   * resolves, `raw` may be written over with another message: a transport that keeps the
   * bytes copies them.
   */
  sendRaw?(to: string, raw: Buffer, messageId: string): Promise<SendResult>;
  close(): void;
}

export class HeaderInjectionError extends UserError {}

/** A CR or LF in a header value would let its author add headers or a body of their own. */
export function assertHeaderSafe(name: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new HeaderInjectionError(`header ${name} contains a line break; refusing to send`);
}

function checkHeaders(mail: OutgoingMail, from: string): void {
  assertHeaderSafe('From', from);
  assertHeaderSafe('To', mail.to);
  assertHeaderSafe('Subject', mail.subject);
  assertHeaderSafe('Message-ID', mail.messageId);
  for (const [k, v] of Object.entries(mail.headers ?? {})) assertHeaderSafe(k, v);
}

const crlf = (s: string): string => s.replace(/\r\n|\r|\n/g, '\r\n');

/** The nodemailer message for one email: what every transport sends, and what compose.ts composes once. */
export function mailOptions(config: Config, mail: OutgoingMail): SendMailOptions {
  checkHeaders(mail, config.mail.from);
  return {
    from: config.mail.from,
    replyTo: config.mail.replyTo,
    to: mail.to,
    subject: mail.subject,
    // SMTP carries CRLF whatever the parts hold; written so from the start, each line is
    // quoted-printable encoded on its own, which compose.ts relies on.
    html: crlf(mail.html),
    text: crlf(mail.text),
    messageId: mail.messageId,
    date: new Date(),
    headers: mail.headers,
    textEncoding: mail.textEncoding,
  };
}

// Monotonic: a clock stepped back by NTP must not stall the sending.
const realClock: GateClock = { now: () => performance.now(), sleep: (ms) => sleep(ms) };

function dkimOptions(config: Config) {
  const key = loadDkimKey(config);
  return key && nodemailerDkim(key);
}

/**
 * A message built already, in the shape nodemailer's SMTP pool reads of what it is given
 * (its transport API: the envelope, the Message-ID, the bytes as a stream). `sendMail`
 * would wrap the bytes in a MailMessage and a raw MIME node and pipe them through three
 * streams before the pool's own: by profile that was a third of what the pool costs a
 * message (bench/send.ts). Signed, as sendMail signs, by nodemailer's DKIM signer.
 * test/integration/transport.test.ts holds it to sendMail({raw}), byte for byte.
 */
function builtMessage(envelope: { from: string; to: string }, raw: Buffer, messageId: string, dkim?: DKIM) {
  const message = {
    data: {},
    message: {
      getEnvelope: () => ({ from: envelope.from, to: [envelope.to] }),
      messageId: () => messageId,
      getHeader: (name: string) => (name.toLowerCase() === 'message-id' ? messageId : undefined),
      createReadStream: () => (dkim ? dkim.sign(endLine(raw)) : Readable.from([raw], { objectMode: false })),
    },
  };
  return message as unknown as MailMessage<SMTPPool.SentMessageInfo>;
}

/**
 * The bytes with a line break at the end, as sendMail adds one before signing: the body
 * hash must cover what SMTP puts on the wire (a final lone CR becomes CRLF there).
 */
function endLine(raw: Buffer): Buffer {
  const last = raw.at(-1);
  if (last === 0x0a) return raw;
  return Buffer.concat([raw, Buffer.from(last === 0x0d ? '\n' : '\r\n')]);
}

/**
 * An envelope address with its domain in ASCII (punycode), as sendMail sends it: readers'
 * addresses are stored with Unicode domains, and a relay without SMTPUTF8 refuses those.
 */
function envelopeAddress(address: string): string {
  const at = address.lastIndexOf('@');
  const ascii = at > 0 ? domainToASCII(address.slice(at + 1)) : '';
  return ascii ? `${address.slice(0, at)}@${ascii}` : address;
}

function smtpTransport(config: Config, url: string, clock: GateClock): MailTransport {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(
      `${config.file ?? 'config'}: mail.smtpUrl (or FEUILLETON_SMTP_URL) is not a URL; ` +
        'use smtp://user:pass@host:587 or smtps://…',
    );
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') {
    throw new ConfigError(
      `${config.file ?? 'config'}: mail.smtpUrl must start with smtp:// or smtps://, not ${parsed.protocol}//`,
    );
  }
  const { ratePerSecond, ratePerMinute } = config.mail;
  const gate = ratePerSecond
    ? new RateGate(ratePerSecond, 1000, clock)
    : ratePerMinute
      ? new RateGate(ratePerMinute, 60_000, clock)
      : undefined;
  const dkim = dkimOptions(config);
  const options: SMTPPool.Options = {
    url,
    pool: true,
    maxConnections: config.mail.maxConnections,
    maxMessages: Infinity,
    dkim,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 60_000,
  };
  const transporter = nodemailer.createTransport(options);
  const pool = transporter.transporter as SMTPPool;
  const signer = dkim && new DKIM(dkim);
  const sender = addressparser(config.mail.from, { flatten: true })[0];
  const envelopeFrom = envelopeAddress(sender && 'address' in sender ? sender.address : config.mail.from);
  return {
    kind: 'smtp',
    description: `smtp ${parsed.hostname}:${parsed.port || (parsed.protocol === 'smtps:' ? 465 : 587)}`,
    async send(mail) {
      const options = mailOptions(config, mail);
      await gate?.pass();
      const info = await transporter.sendMail(options);
      return { messageId: info.messageId, response: info.response };
    },
    async sendRaw(to, raw, messageId) {
      await gate?.pass();
      return new Promise((resolve, reject) => {
        pool.send(
          builtMessage({ from: envelopeFrom, to: envelopeAddress(to) }, raw, messageId, signer),
          (err, info) => {
            if (err || !info) reject(err ?? new Error('the SMTP pool reported neither a result nor an error'));
            else resolve({ messageId, response: info.response, size: info.messageSize });
          },
        );
      });
    },
    close: () => transporter.close(),
  };
}

export interface OutboxEntry {
  id: string;
  to: string;
  from: string;
  subject: string;
  date: string;
  messageId: string;
  headers: Record<string, string>;
  html: string;
  text: string;
}

function outboxTransport(config: Config): MailTransport {
  const dir = config.paths.outbox;
  mkdirSync(dir, { recursive: true });
  const transporter = nodemailer.createTransport({
    streamTransport: true,
    buffer: true,
    newline: 'unix',
    dkim: dkimOptions(config),
  });
  return {
    kind: 'outbox',
    description: `outbox ${dir}`,
    async send(mail) {
      const msg = mailOptions(config, mail);
      const info = await transporter.sendMail(msg);
      // Sortable by time, unique within the millisecond.
      const id = `${Date.now().toString().padStart(14, '0')}-${randomBytes(4).toString('hex')}`;
      const entry: OutboxEntry = {
        id,
        to: mail.to,
        from: config.mail.from,
        subject: mail.subject,
        date: (msg.date as Date).toISOString(),
        messageId: info.messageId,
        headers: mail.headers ?? {},
        html: mail.html,
        text: mail.text,
      };
      // Written under a temporary name and renamed, so a reader never sees half a message.
      writeFileSync(path.join(dir, `.${id}.eml`), info.message as Buffer);
      renameSync(path.join(dir, `.${id}.eml`), path.join(dir, `${id}.eml`));
      writeFileSync(path.join(dir, `.${id}.json`), JSON.stringify(entry));
      renameSync(path.join(dir, `.${id}.json`), path.join(dir, `${id}.json`));
      return { messageId: info.messageId, response: `250 written to outbox as ${id}.eml` };
    },
    close: () => transporter.close(),
  };
}

/**
 * In production the outbox would take every reader's mail and deliver none of it while
 * the ledger records it as sent: why it is refused, or undefined when it may be used.
 */
export function outboxRefusal(config: Config): string | undefined {
  if (config.mail.smtpUrl || !config.production || config.mail.outboxInProduction) return undefined;
  return (
    `no mail server in production (${config.productionReason}): ` +
    'mail would go to the local outbox and reach no reader; set FEUILLETON_SMTP_URL or mail.smtpUrl, ' +
    'or set mail.outboxInProduction: true if you mean it'
  );
}

/** Refuses, before anything is sent or recorded, a transport that would lose mail or sign it badly. */
export function createTransport(config: Config, clock: GateClock = realClock): MailTransport {
  if (config.mail.smtpUrl) return smtpTransport(config, config.mail.smtpUrl, clock);
  const refusal = outboxRefusal(config);
  if (refusal) throw new ConfigError(`${config.file ?? 'config'}: ${refusal}`);
  return outboxTransport(config);
}

const OUTBOX_ID = /^\d{14}-[0-9a-f]{8}$/;

/** Outbox messages, newest first. */
export function listOutbox(dir: string, limit = 200): OutboxEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json') && OUTBOX_ID.test(n.slice(0, -5)))
    .sort()
    .reverse()
    .slice(0, limit)
    .map((n) => JSON.parse(readFileSync(path.join(dir, n), 'utf8')) as OutboxEntry);
}

export function readOutbox(dir: string, id: string): OutboxEntry | undefined {
  if (!OUTBOX_ID.test(id)) return undefined;
  try {
    return JSON.parse(readFileSync(path.join(dir, `${id}.json`), 'utf8')) as OutboxEntry;
  } catch {
    return undefined;
  }
}
