// Compose once, fill per reader. nodemailer builds the whole MIME message for every
// recipient (headers, encodings, boundaries): most of a send's CPU time, though only a few
// values differ from one reader to the next. Here nodemailer composes each message once,
// with slot tokens where the reader's values go, and each reader's bytes are made by
// filling the slots: the header fields that hold them are encoded again by nodemailer's own
// header encoder, and a body part is kept encoded up to a point before its first slot, where
// nodemailer's quoted-printable (or base64) encoder is run again on the rest.
//
// The result is what nodemailer would have built for that reader on its own (a test checks
// it byte for byte on many readers). When the composed template does not have the shape
// this relies on, `compose` answers undefined and the caller composes per message as before.
import { randomBytes } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { foldLines } from 'nodemailer/lib/mime-funcs/index.js';
import type MimeNode from 'nodemailer/lib/mime-node/index.js';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp/index.js';
import type { SendMailOptions } from 'nodemailer';
import type { FilledEmail, PreparedEmail } from '../render/email.ts';
import { escapeHtml } from '../render/fragment.ts';
import type { LinkSubject } from '../links.ts';
import { assertHeaderSafe, type OutgoingMail } from './transport.ts';

/** A reader's values, by slot name. */
export type SlotValues = Record<string, string>;

/** A reader's value: where its token stands, the value goes (escaped in HTML, as it is elsewhere). */
export interface Slot {
  /** Letters and digits only (see slotToken): quoted-printable and HTML escaping leave it as it is. */
  token: string;
  slot: string;
}

/** A header field whose value holds slot tokens: encoded and folded again per reader. */
export interface HeaderSlot {
  /** Header name as nodemailer writes it (To, Message-ID, Date, List-Unsubscribe…). */
  key: string;
  /** The value the template is composed with: tokens where the reader's values go. */
  placeholder: string;
}

/**
 * A stretch of the message: bytes that are the same for every reader, or what one reader's
 * values make of a slot (ASCII: encoded header fields and body lines).
 */
type Piece = Buffer | ((values: SlotValues) => string);

/** Neighbouring fixed stretches joined, so a fill copies a few large buffers. */
function coalesce(pieces: Array<Buffer | string | ((values: SlotValues) => string)>): Piece[] {
  const out: Piece[] = [];
  let run: Buffer[] = [];
  const flush = () => {
    if (run.length) out.push(run.length === 1 ? run[0]! : Buffer.concat(run));
    run = [];
  };
  for (const p of pieces) {
    if (typeof p === 'function') {
      flush();
      out.push(p);
    } else if (p.length > 0) run.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
  }
  flush();
  return out;
}

/** Room left in a new buffer for a later reader's longer address or links. */
const SLACK = 1024;

/**
 * Buffers for readers' copies, given back once the server has its copy. Each copy is some
 * 30 KB outside V8's heap, freed only when its small wrapper object is collected: at pool 20
 * a paced send to 100,000 readers held 40 MB of them waiting for a full collection, its
 * peak 215 MB against about 160 MB filling buffers the server has finished with. `serve`
 * keeps up to `keep` of them (some 30 KB each) between its runs.
 */
export class MessageBuffers {
  private readonly spare: Buffer[] = [];
  /** Handed out by `take` and not given back: only these may come back, and only once. */
  private readonly lent = new WeakSet<ArrayBufferLike>();
  private count = 0;

  /** `keep`: the most held for reuse, as many as messages can be in flight. */
  constructor(private readonly keep: number) {}

  /** Buffers made so far: a send makes about as many as it has messages in flight. */
  get made(): number {
    return this.count;
  }

  /** `size` bytes to write a message into (their content is whatever was there). */
  take(size: number): Buffer {
    const spare = this.spare.pop();
    const whole = spare && spare.length >= size ? spare : Buffer.allocUnsafeSlow(size + SLACK);
    if (whole !== spare) this.count++;
    this.lent.add(whole.buffer);
    return whole.subarray(0, size);
  }

  /** `bytes`, from `take`, will not be read again by anyone: they may hold the next message. */
  give(bytes: Buffer): void {
    if (!this.lent.delete(bytes.buffer)) return;
    if (this.spare.length < this.keep) this.spare.push(Buffer.from(bytes.buffer));
  }
}

/**
 * One reader's bytes: the fixed buffers copied and the slots written into a buffer of
 * exactly the message's size, with no message-sized string built on the way.
 */
function render(pieces: readonly Piece[], values: SlotValues, buffers?: MessageBuffers): Buffer {
  const filled = pieces.map((p) => (typeof p === 'function' ? p(values) : p));
  let size = 0;
  for (const f of filled) size += f.length;
  const out = buffers ? buffers.take(size) : Buffer.allocUnsafe(size);
  let at = 0;
  for (const f of filled) at += typeof f === 'string' ? out.write(f, at, 'latin1') : f.copy(out, at);
  return out;
}

const LINE = 76;
/** Bytes of input per line of base64 output. */
const B64_LINE_BYTES = (LINE / 4) * 3;

/** A fresh body-slot token: never found in story text by chance. */
export const slotToken = (): string => `fslot${randomBytes(9).toString('hex')}x`;

export class ComposedMessage {
  private constructor(
    private readonly pieces: Piece[],
    /** The slot names `fill` needs a value for. */
    readonly slots: ReadonlySet<string>,
  ) {}

  /**
   * Composes `mail` (holding the header placeholders and body tokens) once. `escapeHtml` is
   * what the HTML part needs done to a value before it goes in.
   */
  static async compose(
    mail: SendMailOptions,
    slots: { headers: HeaderSlot[]; values: Slot[] },
    escapeHtml: (value: string) => string,
  ): Promise<ComposedMessage | undefined> {
    const root = new MailComposer({
      ...mail,
      baseBoundary: mail.baseBoundary ?? randomBytes(8).toString('hex'),
    }).compile();
    const built = (await root.build()).toString('latin1');
    const headerEnd = built.indexOf('\r\n\r\n');
    if (headerEnd < 0) return undefined;

    const pieces: Array<string | Buffer | ((values: SlotValues) => string)> = [];
    let at = 0;
    const fixed = (upTo: number) => {
      if (upTo > at) pieces.push(built.slice(at, upTo));
      at = upTo;
    };
    const field = (key: string, value: string) => foldLines(`${key}: ${root.encodeHeaderValue(key, value)}`, LINE);

    // Header slots, in the order their fields stand in the header block.
    const headerSlots = slots.headers
      .map((h) => ({ ...h, template: field(h.key, h.placeholder), index: built.indexOf(field(h.key, h.placeholder)) }))
      .sort((a, b) => a.index - b.index);
    for (const h of headerSlots) {
      if (h.index < at || h.index > headerEnd || built.indexOf(h.template, h.index + 1) >= 0) return undefined;
      fixed(h.index);
      const inHeader = slots.values.filter((s) => h.placeholder.includes(s.token));
      pieces.push((v) =>
        field(
          h.key,
          inHeader.reduce((value, s) => value.split(s.token).join(v[s.slot]), h.placeholder),
        ),
      );
      at = h.index + h.template.length;
    }

    // Body parts, in the order they stand in the message.
    const parts = leaves(root)
      .map((node) => bodyPart(node, slots.values, escapeHtml))
      .filter((p) => p !== undefined);
    let searchFrom = headerEnd;
    for (const part of parts) {
      if (part === null) return undefined;
      const index = built.indexOf(part.encoded, searchFrom);
      if (index < 0) return undefined;
      fixed(index);
      pieces.push(...part.pieces);
      at = index + part.encoded.length;
      searchFrom = at;
    }
    fixed(built.length);
    // A token left over would mean a slot nobody fills: every reader would get it verbatim.
    const joined = coalesce(pieces);
    const rest = Buffer.concat(joined.filter((p) => typeof p !== 'function')).toString('latin1');
    if (slots.values.some((s) => rest.includes(s.token))) return undefined;
    return new ComposedMessage(joined, new Set(slots.values.map((s) => s.slot)));
  }

  /** This reader's message, ready to hand to the SMTP pool as `raw`; written into one of `buffers` when given. */
  fill(values: SlotValues, buffers?: MessageBuffers): Buffer {
    return render(this.pieces, values, buffers);
  }
}

/** The values every addressed email holds besides its placeholders: the slots `composeAddressed` adds. */
export type AddressValues = SlotValues & { to: string; messageId: string; date: string; unsubscribeUrl: string };

/** A prepared email composed once with slots for its address: each reader's bytes from their values. */
export class AddressedTemplate {
  constructor(
    private readonly message: ComposedMessage,
    private readonly prepared: Pick<PreparedEmail, 'valuesFor'>,
    private readonly buffers?: MessageBuffers,
  ) {}

  /** What a reader's copy differs by: their address and links, the message's id and date. */
  get slots(): ReadonlySet<string> {
    return this.message.slots;
  }

  /**
   * `reader`'s copy, with this message's id and Date header (`dateHeader`): their links
   * from the prepared email, as its own `fillFor` makes them. `own` as there.
   */
  bytesFor(
    reader: LinkSubject & { email: string },
    header: { messageId: string; date: string },
    own: Record<string, string> = {},
  ): Buffer {
    assertHeaderSafe('To', reader.email);
    return this.message.fill(
      { ...this.prepared.valuesFor(reader, this.message.slots), ...own, to: reader.email, ...header },
      this.buffers,
    );
  }

  /**
   * Bytes from `bytesFor` that nobody will read again (the server accepted all of them:
   * nodemailer is done with a message once its promise resolves), for the next reader's copy.
   */
  release(bytes: Buffer): void {
    this.buffers?.give(bytes);
  }
}

/**
 * Composes a prepared email once for all its readers: a slot for each of its placeholders
 * and for the reader's To, Message-ID, Date and unsubscribe link. `address` addresses the
 * email filled with tokens as it would a reader's (the headers it gives a token go in
 * slots too); `options` is the transport's nodemailer message for it. Values go into the HTML
 * part escaped as the prepared email's own `fill` escapes them.
 */
export async function composeAddressed(
  prepared: Pick<PreparedEmail, 'placeholders' | 'fill' | 'valuesFor'>,
  address: (filled: FilledEmail, token: AddressValues) => OutgoingMail,
  options: (mail: OutgoingMail) => SendMailOptions,
  buffers?: MessageBuffers,
): Promise<AddressedTemplate | undefined> {
  const names = new Set(['to', 'messageId', 'date', 'unsubscribeUrl', ...prepared.placeholders]);
  // nodemailer drops a To that is not an address: that token is one.
  const values: Slot[] = [...names].map((slot) => ({
    slot,
    token: slot === 'to' ? `${slotToken()}@compose.invalid` : slotToken(),
  }));
  const token = Object.fromEntries(values.map((s) => [s.slot, s.token])) as AddressValues;
  const mail = address(prepared.fill(token), token);
  const headers: HeaderSlot[] = [
    { key: 'To', placeholder: token.to },
    { key: 'Message-ID', placeholder: token.messageId },
    { key: 'Date', placeholder: token.date },
    ...Object.entries(mail.headers ?? {})
      .filter(([, value]) => values.some((s) => value.includes(s.token)))
      .map(([key, placeholder]) => ({ key, placeholder })),
  ];
  const composed = { ...options(mail), date: token.date };
  const message = await ComposedMessage.compose(composed, { headers, values }, escapeHtml);
  return message && new AddressedTemplate(message, prepared, buffers);
}

function leaves(node: MimeNode): MimeNode[] {
  return node.childNodes.length ? node.childNodes.flatMap(leaves) : [node];
}

interface Part {
  /** The part's body as nodemailer encoded it in the template. */
  encoded: string;
  /** The part's body as a reader's values fill it, stretch by stretch. */
  pieces: Piece[];
}

/**
 * How one leaf part is filled: undefined for a part without slots (it stays as composed),
 * null when the part is not one this knows how to fill.
 */
function bodyPart(node: MimeNode, body: Slot[], escapeHtml: (v: string) => string): Part | undefined | null {
  const content = node.content;
  if (typeof content !== 'string') return null;
  const bytes = Buffer.from(content, 'utf8');
  const html = /^text\/html\b/i.test(node.contentType ?? '');
  // Where each token stands in the part's bytes, in order.
  const found: Array<{ start: number; end: number; slot: string }> = [];
  for (const s of body) {
    for (let i = bytes.indexOf(s.token); i >= 0; i = bytes.indexOf(s.token, i + s.token.length))
      found.push({ start: i, end: i + s.token.length, slot: s.slot });
  }
  if (found.length === 0) return undefined;
  found.sort((a, b) => a.start - b.start);
  const value = (v: SlotValues, slot: string) => Buffer.from(html ? escapeHtml(v[slot]!) : v[slot]!, 'utf8');
  const encoding = node.getTransferEncoding();

  if (encoding === 'base64') {
    // Whole lines of output before the first slot stay; the rest is encoded per reader.
    const keep = Math.floor(found[0]!.start / B64_LINE_BYTES) * B64_LINE_BYTES;
    const prefix = keep > 0 ? base64Lines(bytes.subarray(0, keep)) + '\r\n' : '';
    const rest = spliced(bytes, keep, bytes.length, found);
    return { encoded: base64Lines(bytes), pieces: coalesce([prefix, (v) => base64Lines(rest(v, value))]) };
  }
  if (encoding !== 'quoted-printable') return null;

  // The wrap starts afresh after every line break (the parts are written with CRLF, see
  // mailOptions), so each line encodes on its own: the lines that hold a slot are encoded
  // again per reader, every other line once.
  const pieces: Array<string | ((values: SlotValues) => string)> = [];
  let fixed = '';
  for (let start = 0, f = 0; start < bytes.length;) {
    const lf = bytes.indexOf(0x0a, start);
    const end = lf < 0 ? bytes.length : lf + 1;
    const inLine: typeof found = [];
    while (f < found.length && found[f]!.start < end) inLine.push(found[f++]!);
    if (inLine.length === 0) {
      fixed += qpWrap(qpEncode(bytes.subarray(start, end)), LINE);
    } else {
      if (fixed) pieces.push(fixed);
      fixed = '';
      const line = spliced(bytes, start, end, inLine);
      pieces.push((v) => qpWrap(qpEncode(line(v, value)), LINE));
    }
    start = end;
  }
  if (fixed) pieces.push(fixed);
  const encoded = qpWrap(qpEncode(bytes), LINE);
  const joined = coalesce(pieces);
  // Filled with its own tokens, the part must come out as nodemailer encoded it whole.
  const tokens = Object.fromEntries(body.map((s) => [s.slot, s.token]));
  return render(joined, tokens).toString('latin1') === encoded ? { encoded, pieces: joined } : null;
}

/** The part's bytes from `from` to `to`, with each token found there replaced by the reader's value. */
function spliced(bytes: Buffer, from: number, to: number, found: Array<{ start: number; end: number; slot: string }>) {
  const literals: Buffer[] = [];
  let at = from;
  for (const f of found) {
    literals.push(bytes.subarray(at, f.start));
    at = f.end;
  }
  literals.push(bytes.subarray(at, to));
  const slotsInOrder = found.map((f) => f.slot);
  return (v: SlotValues, value: (v: SlotValues, slot: string) => Buffer): Buffer => {
    const chunks: Buffer[] = [literals[0]!];
    for (let i = 0; i < slotsInOrder.length; i++) chunks.push(value(v, slotsInOrder[i]!), literals[i + 1]!);
    return Buffer.concat(chunks);
  };
}

/** base64 in lines of LINE characters joined by CRLF, the last one without: nodemailer's layout. */
function base64Lines(bytes: Buffer): string {
  const b64 = bytes.toString('base64');
  let out = '';
  for (let i = 0; i < b64.length; i += LINE) out += (i ? '\r\n' : '') + b64.slice(i, i + LINE);
  return out;
}
