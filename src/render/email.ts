// Emails from MJML templates, compiled once per (template, installment) and filled per
// recipient. Eta renders the installment-level values into the MJML; every per-recipient
// value (unsubscribe link, private feed…) is emitted as a placeholder token carrying a
// nonce drawn for that render, so no story text can ever look like a placeholder. MJML then
// compiles the HTML once, html-to-text derives the text part from that same HTML, and both
// are cut at their placeholders: filling for one of 100,000 recipients is a string join.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Eta } from 'eta';
import { compile, type FormatCallback } from 'html-to-text';
import type { App } from '../app.ts';
import type { Config } from '../config.ts';
import { UserError } from '../errors.ts';
import type { LinkSubject, Links } from '../links.ts';
import type { StoredInstallment } from '../store/installments.ts';
import type { StoryInfo } from '../story/info.ts';
import type { Block } from '../story/types.ts';
import { escapeHtml, installmentHtml, ratingNotice, readingBlocks, SCENE_BREAK_LINE } from './fragment.ts';
import { compileMjml, MjmlError } from './mjml.ts';

export type PlaceholderName = 'unsubscribeUrl' | 'nextUrl' | 'feedUrl' | 'confirmUrl' | 'readToken' | 'preferencesUrl';

export type TextEncoding = 'quoted-printable' | 'base64';

export interface FilledEmail {
  subject: string;
  html: string;
  text: string;
  /** The same for every reader of one compiled email: their values are only links. */
  textEncoding: TextEncoding;
}

/**
 * Quoted-printable keeps mostly-Latin text readable and small; base64 is smaller for other
 * scripts. nodemailer would work this out by scanning every body several times per message,
 * a fifth or more of a send's CPU time in profiles, for a choice made once here.
 */
export function preferredTextEncoding(text: string): TextEncoding {
  const latin = text.length - text.replace(/[A-Za-z]/g, '').length;
  const other = text.length - text.replace(/[^\t\n\r\x20-\x7e]/g, '').length;
  return other < latin ? 'quoted-printable' : 'base64';
}

export interface PreparedEmail {
  readonly subject: string;
  /** The placeholders this email contains; `fill` needs a value for each and ignores others. */
  readonly placeholders: readonly string[];
  /** Substitutes values (HTML-escaped in html, as-is in text); throws on a missing value or one with CR/LF. */
  fill(values: Record<string, string>): FilledEmail;
  /**
   * `reader`'s values for `names` (by default this email's placeholders and the unsubscribe
   * link its List-Unsubscribe header carries): their links, signed by `Links.forReader`.
   * Every email takes its per-reader values from here, whether filled here or composed once.
   */
  valuesFor(reader: LinkSubject, names?: Iterable<string>): Record<string, string>;
  /**
   * The email as `reader` gets it, with the unsubscribe link for its headers. `own` holds
   * values that belong to this one email rather than to the reader (a confirmation link).
   */
  fillFor(reader: LinkSubject, own?: Record<string, string>): { email: FilledEmail; unsubscribeUrl: string };
}

const PREHEADER_CHARS = 100;

const sceneBreak: FormatCallback = (_elem, _walk, builder) => {
  builder.openBlock({ leadingLineBreaks: 2 });
  builder.addLiteral(SCENE_BREAK_LINE);
  builder.closeBlock({ trailingLineBreaks: 2 });
};

type Node = Parameters<FormatCallback>[0];
const textOf = (node: Node): string =>
  node.type === 'text' ? String(node.data ?? '') : (node.children ?? []).map(textOf).join('');

/**
 * A link's words, then its address on a line of its own (once, if the words are the
 * address): whole, easy to tap or copy.
 */
const linkOnItsOwnLine: FormatCallback = (elem, walk, builder) => {
  walk(elem.children, builder);
  const href = String((elem.attribs as Record<string, string> | undefined)?.href ?? '').trim();
  if (!href || textOf(elem).trim() === href) return;
  builder.addLineBreak();
  builder.addInline(href, { noWordTransform: true });
  builder.addLineBreak();
};

/** A separator between links (" · ") is a new line in text, where each link has a line of its own. */
const separator: FormatCallback = (_elem, _walk, builder) => builder.addLineBreak();

// No wrapping: hard-wrapped prose reads badly on phones, every client soft-wraps, and
// quoted-printable keeps long lines legal on the wire. The text part starts at MJML's
// role="article" wrapper and leaves out the hidden preheader (the inbox preview).
const htmlToText = compile({
  wordwrap: false,
  baseElements: { selectors: ['div[role=article]'] },
  formatters: { sceneBreak, linkOnItsOwnLine, separator },
  selectors: [
    { selector: 'img', format: 'skip' },
    { selector: 'div.preheader', format: 'skip' },
    { selector: 'a', format: 'linkOnItsOwnLine' },
    { selector: 'span.sep', format: 'separator' },
    { selector: 'h1', options: { uppercase: false, leadingLineBreaks: 2 } },
    { selector: 'h2', options: { uppercase: false, leadingLineBreaks: 2 } },
    { selector: 'p.scene-break', format: 'sceneBreak' },
  ],
});

/** Compiled output cut at its placeholders: even indexes are literal text, odd ones placeholder names. */
type Parts = string[];

const placeholderNames = (parts: Parts): string[] => parts.filter((_, i) => i % 2 === 1);

function join(parts: Parts, values: Record<string, string>): string {
  let out = parts[0]!;
  for (let i = 1; i < parts.length; i += 2) out += values[parts[i]!]! + parts[i + 1]!;
  return out;
}

class Prepared implements PreparedEmail {
  readonly placeholders: readonly string[];
  private readonly textEncoding: TextEncoding;

  constructor(
    readonly subject: string,
    private readonly html: Parts,
    private readonly text: Parts,
    private readonly links: Pick<Links, 'forReader'>,
  ) {
    this.placeholders = [...new Set([...placeholderNames(html), ...placeholderNames(text)])];
    this.textEncoding = preferredTextEncoding(text.filter((_, i) => i % 2 === 0).join(''));
  }

  fill(values: Record<string, string>): FilledEmail {
    for (const [name, value] of Object.entries(values)) {
      if (/[\r\n]/.test(value)) throw new Error(`email value "${name}" contains a line break`);
    }
    const raw: Record<string, string> = {};
    const escaped: Record<string, string> = {};
    for (const name of this.placeholders) {
      if (!Object.hasOwn(values, name)) throw new Error(`email value "${name}" is missing`);
      raw[name] = values[name]!;
      escaped[name] = escapeHtml(values[name]!);
    }
    return {
      subject: this.subject,
      html: join(this.html, escaped),
      text: join(this.text, raw),
      textEncoding: this.textEncoding,
    };
  }

  valuesFor(
    reader: LinkSubject,
    names: Iterable<string> = ['unsubscribeUrl', ...this.placeholders],
  ): Record<string, string> {
    return this.links.forReader(reader, names);
  }

  fillFor(reader: LinkSubject, own: Record<string, string> = {}): { email: FilledEmail; unsubscribeUrl: string } {
    const values = { ...this.valuesFor(reader), ...own };
    return { email: this.fill(values), unsubscribeUrl: values.unsubscribeUrl! };
  }
}

const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;

function preheader(blocks: Block[]): string {
  const first = blocks.find((b) => b.kind === 'paragraph');
  if (!first) return '';
  const text = first.text.replace(/\s+/g, ' ').trim();
  if (text.length <= PREHEADER_CHARS) return text;
  const cut = text.slice(0, PREHEADER_CHARS);
  const space = cut.lastIndexOf(' ');
  return `${space > PREHEADER_CHARS / 2 ? cut.slice(0, space) : cut}…`;
}

/** This story's renderer: its templates, its config, and its progress for "Part N of M". */
export const emailRendererFor = (app: App, links: Links): EmailRenderer =>
  new EmailRenderer({
    templatesDir: app.config.paths.templates,
    info: app.info,
    config: app.config,
    links,
    progress: () => app.store.installments.count(),
  });

export class EmailRenderer {
  private readonly eta: Eta;
  private readonly templatesDir: string;
  private readonly info: StoryInfo;
  private readonly config: Config;
  private readonly links: Links;
  /** Built once: `installment()` runs per recipient, and constructing a formatter is not cheap. */
  private readonly dateFormat: Intl.DateTimeFormat;
  /** One entry per email slot (each template, each installment number): a new version replaces the old. */
  private readonly cache = new Map<string, { version: string; email: Promise<PreparedEmail> }>();
  private readonly compileMjml: typeof compileMjml;

  /** How far the story is: "Part N of M", the end of the story, and what a late subscriber is told. */
  private readonly progress: (() => { total: number; published: number }) | undefined;

  constructor(opts: {
    templatesDir: string;
    info: StoryInfo;
    config: Config;
    links: Links;
    progress?: () => { total: number; published: number };
    /** MJML itself by default; given, it shows how often MJML runs (once per installment, not per reader). */
    compileMjml?: typeof compileMjml;
  }) {
    this.templatesDir = opts.templatesDir;
    this.compileMjml = opts.compileMjml ?? compileMjml;
    this.progress = opts.progress;
    this.eta = new Eta({ views: opts.templatesDir, defaultExtension: '.mjml', cache: true, autoEscape: true });
    this.info = opts.info;
    this.config = opts.config;
    this.links = opts.links;
    this.dateFormat = new Intl.DateTimeFormat(opts.info.language, {
      dateStyle: 'full',
      timeZone: opts.config.schedule.timezone,
    });
  }

  /**
   * Subject "<story title> — <installment title>"; installment titles come from
   * `split.partTitle`, which always carries the number. `nextDate` (ISO 8601) is shown in
   * broadcast mode only, formatted in the schedule's time zone.
   */
  installment(inst: StoredInstallment, ctx: { nextDate?: string | null }): Promise<PreparedEmail> {
    const paced = this.config.mode === 'paced';
    const nextDate = paced || !ctx.nextDate ? null : this.formatDate(ctx.nextDate);
    const total = this.progress?.().total;
    const last = total !== undefined && inst.number >= total;
    const part = total === undefined ? `Part ${inst.number}` : `Part ${inst.number} of ${total}`;
    // Paced readers run ahead of the public calendar: their links carry a token that opens what they were sent.
    // Every installment but the last lets the reader choose when the next ones come.
    const calendar: PlaceholderName[] = last ? [] : ['preferencesUrl'];
    const placeholders: PlaceholderName[] = paced
      ? ['unsubscribeUrl', 'feedUrl', 'readToken', ...(last ? [] : ['nextUrl' as const]), ...calendar]
      : ['unsubscribeUrl', 'feedUrl', ...calendar];
    return this.cached(`installment:${inst.number}`, `${inst.hash}|${nextDate ?? ''}|${total ?? ''}`, () =>
      this.prepare('installment', `${this.info.title} — ${inst.title}`, placeholders, {
        heading: inst.title,
        part,
        preheader: `${part} · ${preheader(inst.blocks)}`,
        ratingNotice: ratingNotice(this.info),
        readingTime: `About ${plural(Math.max(1, inst.minutes), 'minute')}`,
        fragment: installmentHtml(readingBlocks(inst)),
        readOnlineUrl: (token?: string) => this.links.installment(inst.number, token),
        previousUrl: inst.number > 1 ? (token?: string) => this.links.installment(inst.number - 1, token) : null,
        ending: last ? this.ending() : null,
        nextDate,
      }),
    );
  }

  /** Where the finished story can be had: every reader's last installment and "The End" offer it. */
  private ending(): { wholeStoryUrl: (token?: string) => string; epubUrl: (token?: string) => string } {
    return { wholeStoryUrl: (token) => this.links.wholeStory(token), epubUrl: (token) => this.links.epub(token) };
  }

  /** Broadcast with every installment published: a new subscriber has nothing more to wait for. */
  private complete(): boolean {
    const p = this.progress?.();
    return this.config.mode === 'broadcast' && p !== undefined && p.total > 0 && p.published >= p.total;
  }

  confirm(): Promise<PreparedEmail> {
    const complete = this.complete();
    return this.cached('confirm', String(complete), () =>
      this.prepare('confirm', `Confirm your subscription to ${this.info.title}`, ['confirmUrl'], {
        preheader: complete
          ? `One click to confirm your subscription to ${this.info.title}.`
          : `One click to start receiving ${this.info.title}.`,
        expiresIn: plural(this.config.subscribe.tokenTtlHours, 'hour'),
        complete,
      }),
    );
  }

  welcome(): Promise<PreparedEmail> {
    const complete = this.complete();
    return this.cached('welcome', String(complete), () =>
      this.prepare(
        'welcome',
        `Welcome to ${this.info.title}`,
        complete ? ['unsubscribeUrl', 'feedUrl'] : ['unsubscribeUrl', 'feedUrl', 'preferencesUrl'],
        {
          preheader: complete
            ? `${this.info.title} is complete: read it online or as an EPUB.`
            : `You are subscribed to ${this.info.title}.`,
          paced: this.config.mode === 'paced',
          ending: complete ? this.ending() : null,
        },
      ),
    );
  }

  theEnd(): Promise<PreparedEmail> {
    const paced = this.config.mode === 'paced';
    return this.cached('the-end', '', () =>
      this.prepare(
        'the-end',
        `${this.info.title} — The End`,
        paced ? ['unsubscribeUrl', 'readToken'] : ['unsubscribeUrl'],
        {
          preheader: `You now have all of ${this.info.title}. Thank you.`,
          ending: this.ending(),
        },
      ),
    );
  }

  /** Caches the promise, so concurrent senders share one compilation; a failure is not cached. */
  private cached(slot: string, version: string, make: () => Promise<PreparedEmail>): Promise<PreparedEmail> {
    const hit = this.cache.get(slot);
    if (hit?.version === version) return hit.email;
    const email = make();
    this.cache.set(slot, { version, email });
    email.catch(() => {
      if (this.cache.get(slot)?.email === email) this.cache.delete(slot);
    });
    return email;
  }

  private async prepare(
    template: string,
    subject: string,
    placeholders: PlaceholderName[],
    data: object,
  ): Promise<PreparedEmail> {
    const nonce = randomBytes(12).toString('hex');
    const ph = Object.fromEntries(placeholders.map((name) => [name, `ph${nonce}_${name}_`]));
    const source = this.eta.render(`./${template}`, {
      subject,
      title: this.info.title,
      author: this.info.author,
      lang: this.info.language,
      homeUrl: this.links.home(),
      // One line in the footer, whatever the line breaks in the config.
      postalAddress: this.config.mail.postalAddress
        .trim()
        .split(/\s*\n\s*/)
        .join(', '),
      ph,
      ...data,
    });
    const file = path.join(this.templatesDir, `${template}.mjml`);
    const html = await this.compileMjml(source, file).catch((err: Error) => {
      if (!(err instanceof MjmlError)) throw err;
      throw new UserError(
        `${file} is not valid MJML (${err.message.replace(/\s+/g, ' ').trim()}); fix the template and try again`,
      );
    });
    const cut = new RegExp(`ph${nonce}_([A-Za-z]+)_`);
    return new Prepared(subject, html.split(cut), htmlToText(html).split(cut), this.links);
  }

  private formatDate(iso: string): string {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) throw new Error(`next installment date "${iso}" is not an ISO 8601 date`);
    return this.dateFormat.format(date);
  }
}
