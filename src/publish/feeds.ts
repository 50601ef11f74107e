// RSS 2.0, Atom 1.0 and JSON Feed 1.1 from installments, built with the `feed` package, and
// the cache that serves them.
//
// Item ids are the installment's permalink (`${baseUrl}/installments/N`, URL-normalized):
// the number never changes once published and the text is frozen, so the id is stable for
// good, and the same in every format and in private feeds, letting readers de-duplicate.
// It depends on baseUrl exactly as every link does: set baseUrl before the first publication.
//
// The header's labels are categories on the channel and every item: each Category value, then
// "Rating: M", "Warnings: …", "Pairing: …" under the author's own keys; adult stories also
// get the same notice paragraph the email and the web page show, at the top of the content,
// because feed readers rarely display categories.
import { createHash } from 'node:crypto';
import { Feed, type Author, type Category, type Item } from 'feed';
import { compile } from 'html-to-text';
import type { App } from '../app.ts';
import { linksFor, type Links } from '../links.ts';
import { escapeHtml, installmentHtml, ratingNotice, readingBlocks } from '../render/fragment.ts';
import type { StoredInstallment } from '../store/installments.ts';
import type { Subscriber } from '../store/subscribers.ts';
import { feedCategories, type StoryInfo } from '../story/info.ts';
import type { Block } from '../story/types.ts';

export type FeedFormat = 'rss' | 'atom' | 'json';
export type PrivateFeedFormat = 'rss' | 'atom';

export const FEED_CONTENT_TYPES: Record<FeedFormat, string> = {
  rss: 'application/rss+xml; charset=utf-8',
  atom: 'application/atom+xml; charset=utf-8',
  json: 'application/feed+json; charset=utf-8',
};

/** An installment as one feed shows it; `date` is when it reached this feed's reader. */
interface FeedEntry {
  installment: StoredInstallment;
  date: Date;
}

/** What a feed says about itself: Atom id, self links, and its last change. */
interface FeedIdentity {
  id: string;
  self: Partial<Record<FeedFormat, string>>;
  updated: Date;
}

interface FeedContext {
  info: StoryInfo;
  links: Links;
  image: string | undefined;
}

/** One feed's bytes with their validators. Private feeds build the bytes only when asked. */
export interface FeedDocument {
  format: FeedFormat;
  /** Strong: the quoted sha256 of the bytes. */
  etag: string;
  /** The last publication (or delivery) in the feed; null for an empty feed. */
  lastModified: Date | null;
  body(): Buffer;
}

const SUMMARY_CHARS = 200;

// feed@6 writes titles, summaries and content as CDATA through xml-js, which splits only
// the first "]]>" of a value; a second one would close the section early and break the
// document. Splitting every later one ourselves, the same way, leaves xml-js just one.
const cdataSafe = (s: string): string => {
  let seen = false;
  return s.replace(/]]>/g, (m) => (seen ? ']]]]><![CDATA[>' : ((seen = true), m)));
};

// C0 controls other than tab and line breaks cannot appear in XML 1.0 at all, not even as
// character references; a stray form feed in a story file would make the feed unreadable.
// eslint-disable-next-line no-control-regex -- matching those control characters is the point
const XML_ILLEGAL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

// feed@6 escapes "&" and '"' in attributes but not "<", which XML forbids there. Only
// Atom category terms (from the story header) can carry one; a look-alike keeps them legible.
const attributeSafe = (s: string): string => s.replaceAll('<', '\uFF1C');

const paragraphText = compile({ wordwrap: false });

/** About the first SUMMARY_CHARS characters of prose, cut at a word, as plain text. */
function summarize(blocks: Block[]): string {
  const lead: string[] = [];
  let length = 0;
  for (const b of blocks) {
    if (b.kind !== 'paragraph') continue;
    lead.push(`<p>${b.html}</p>`);
    length += b.text.length;
    if (length > SUMMARY_CHARS) break;
  }
  const text = paragraphText(lead.join('')).replace(/\s+/g, ' ').trim();
  if (text.length <= SUMMARY_CHARS) return text;
  const cut = text.slice(0, SUMMARY_CHARS);
  const space = cut.lastIndexOf(' ');
  return `${(space > SUMMARY_CHARS / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:.—–-]+$/, '')}…`;
}

// One spelling of every URL in every format: feed@6 normalizes some URLs itself (RSS, Atom) and
// not others (JSON Feed, RSS guid), and ids must compare equal across formats.
const absolute = (url: string): string => new URL(url).href;

function storyContent(info: StoryInfo, blocks: Block[]): string {
  const notice = ratingNotice(info);
  const html = installmentHtml(blocks);
  return notice ? `<p class="rating-notice"><strong>${escapeHtml(notice)}</strong></p>\n${html}` : html;
}

// RSS 2.0 says nothing on whether a title is text or HTML, and readers split three ways:
// newsboat shows it as text, browser-based readers as HTML, feedparser and SimplePie guess
// (HTML when it holds a closing tag or an entity). Text that no HTML parser would take for
// markup reads the same in all three, so it goes out as written ("Fish & Chips", "<3").
// Text that would parse as a tag or a character reference ("<b>", "&amp;") is HTML-escaped:
// HTML and guessing readers then show the author's characters, text-only readers show
// entities, and no reader ever renders the author's words as markup.
const LOOKS_LIKE_MARKUP = /<[A-Za-z/!?]|&(?:#|\w+;)/;
const rssText = (s: string): string => (LOOKS_LIKE_MARKUP.test(s) ? s.replace(/[&<>]/g, escapeHtml) : s);

// xml-js turns every "&amp;" in a text node back into "&" before escaping it (to undo
// double escaping), so a literal "&amp;" would lose its "amp;". Escaping each "&" first
// makes that undo exact. CDATA sections and attributes are written without it.
const xmlText = (s: string): string => s.replaceAll('&', '&amp;');

interface FormatText {
  /** Plain text written as an XML text node: channel title and description, names. */
  text(s: string): string;
  title(s: string): string;
  summary(s: string): string;
  content(s: string): string;
  /** A category as the format writes it: text node (RSS), attribute (Atom) or string (JSON). */
  category(s: string): string;
}

// Atom titles and summaries are typed html (feed@6 writes them so) and every item value
// passes through CDATA; RSS titles follow rssText and its description is HTML; JSON Feed
// titles and summaries are plain text by the spec.
const FORMAT_TEXT: Record<FeedFormat, FormatText> = {
  rss: {
    text: (s) => xmlText(rssText(s)),
    title: (s) => cdataSafe(rssText(s)),
    summary: escapeHtml,
    content: cdataSafe,
    category: xmlText,
  },
  atom: { text: xmlText, title: escapeHtml, summary: escapeHtml, content: cdataSafe, category: attributeSafe },
  json: { text: (s) => s, title: (s) => s, summary: (s) => s, content: (s) => s, category: (s) => s },
};

function item(format: FeedFormat, entry: FeedEntry, ctx: FeedContext, author: Author): Item {
  const { installment: inst, date } = entry;
  const text = FORMAT_TEXT[format];
  const url = absolute(ctx.links.installment(inst.number));
  return {
    id: url,
    link: url,
    title: text.title(inst.title),
    // Frozen text never changes: updated is the publication date.
    date,
    published: date,
    description: text.summary(summarize(inst.blocks)),
    content: text.content(storyContent(ctx.info, readingBlocks(inst))),
    category: feedCategories(ctx.info).map((c): Category =>
      format === 'atom' ? { term: text.category(c) } : { name: text.category(c) },
    ),
    // RSS <author> must be an email address; a name goes in dc:creator (feed@6 declares dc).
    ...(format === 'rss'
      ? { extensions: [{ name: 'dc:creator', objects: { _text: author.name } }] }
      : { author: [author] }),
  };
}

const ATOM_ROOT = '<feed xmlns="http://www.w3.org/2005/Atom"';

/** feed@6 writes JSON Feed 1.0; 1.1 adds `language` and replaces `author` with `authors`. */
function jsonFeed11(json: string, language: string): string {
  const doc = JSON.parse(json) as {
    version: string;
    language?: string;
    author?: Author;
    authors?: Author[];
    items: Array<{ author?: Author; authors?: Author[] }>;
  };
  doc.version = 'https://jsonfeed.org/version/1.1';
  doc.language = language;
  // `author` stays for 1.0 readers, as the 1.1 spec allows.
  if (doc.author) doc.authors = [doc.author];
  for (const i of doc.items) if (i.author) i.authors = [i.author];
  return JSON.stringify(doc, null, 2);
}

/** The feed as text, entries in the order given. */
function buildFeed(format: FeedFormat, entries: FeedEntry[], ctx: FeedContext, identity: FeedIdentity): string {
  const { info, links } = ctx;
  const text = FORMAT_TEXT[format];
  // Atom requires an author; the story title is the only name there is without one.
  const author: Author = { name: text.text(info.author ?? info.title) };
  const feed = new Feed({
    id: absolute(identity.id),
    title: text.text(info.title),
    description: text.text(info.summary ?? info.title),
    link: absolute(links.home()),
    language: info.language,
    image: ctx.image && absolute(ctx.image),
    updated: identity.updated,
    generator: 'feuilleton',
    feedLinks: Object.fromEntries(Object.entries(identity.self).map(([format, url]) => [format, absolute(url)])),
    author,
  });
  for (const c of feedCategories(info)) feed.addCategory(text.category(c));
  for (const e of entries) feed.addItem(item(format, e, ctx, author));
  switch (format) {
    case 'rss':
      return feed.rss2().replace(XML_ILLEGAL, '');
    case 'atom':
      // Atom states the language as xml:lang, which feed@6 does not write; the config allows
      // only a language tag there, so it is safe in an attribute.
      return feed.atom1().replace(ATOM_ROOT, `${ATOM_ROOT} xml:lang="${info.language}"`).replace(XML_ILLEGAL, '');
    case 'json':
      return jsonFeed11(feed.json1(), info.language);
  }
}

/** Published installments only, whatever the caller passed, newest first. */
function publishedEntries(installments: StoredInstallment[]): FeedEntry[] {
  return installments
    .flatMap((i) => (i.publishedAt ? [{ installment: i, date: new Date(i.publishedAt) }] : []))
    .sort((a, b) => b.installment.number - a.installment.number);
}

const latest = (entries: FeedEntry[]): Date | null =>
  entries.reduce<Date | null>((max, e) => (!max || e.date > max ? e.date : max), null);

const strongEtag = (bytes: Buffer): string => `"${createHash('sha256').update(bytes).digest('base64url')}"`;

function document(format: FeedFormat, text: string, lastModified: Date | null): FeedDocument {
  const bytes = Buffer.from(text, 'utf8');
  return { format, etag: strongEtag(bytes), lastModified, body: () => bytes };
}

interface Snapshot {
  key: string;
  /** Ascending by number. */
  installments: StoredInstallment[];
  entries: FeedEntry[];
  docs: Partial<Record<FeedFormat, FeedDocument>>;
}

interface Validators {
  key: string;
  etag: string;
  lastModified: Date | null;
}

/** Private feeds keep validators only (a few dozen bytes each), so this bounds memory, not readers. */
const MAX_PRIVATE_VALIDATORS = 10_000;

/**
 * The published set and the public feeds' bytes, rebuilt only when the set changes (its
 * key: published count + last publication date, checked on every call). Private feeds are
 * built on request; their validators are kept so a conditional request is answered
 * without building anything.
 */
export class FeedCache {
  private readonly ctx: FeedContext;
  private snapshot: Snapshot | undefined;
  private readonly validators = new Map<string, Validators>();
  /** `updated` of a feed with nothing in it yet: fixed per process so its bytes are stable. */
  private readonly emptySince = new Date();

  constructor(private readonly app: App) {
    this.ctx = { info: app.info, links: linksFor(app), image: app.config.story.image };
  }

  /** The published installments, ascending by number. */
  published(): StoredInstallment[] {
    return this.current().installments;
  }

  feed(format: FeedFormat): FeedDocument {
    const snap = this.current();
    return (snap.docs[format] ??= this.build(format, snap.entries, this.ctx.links.feed('atom'), {
      rss: this.ctx.links.feed('rss'),
      atom: this.ctx.links.feed('atom'),
      json: this.ctx.links.feed('json'),
    }));
  }

  /**
   * What this subscriber's private feed holds: in paced mode exactly the installments they
   * have been sent (dated when sent), in broadcast mode every published one.
   */
  privateFeed(sub: Subscriber, format: PrivateFeedFormat): FeedDocument {
    const { entries, key } = this.privateEntries(sub);
    const slot = `${sub.feedToken}.${format}`;
    const links = this.ctx.links;
    const build = () =>
      this.build(format, entries(), links.privateFeed(sub, 'atom'), { [format]: links.privateFeed(sub, format) });
    const known = this.validators.get(slot);
    if (known?.key === key) {
      // Refresh its place: the map's insertion order is the eviction order.
      this.validators.delete(slot);
      this.validators.set(slot, known);
      return { format, etag: known.etag, lastModified: known.lastModified, body: () => build().body() };
    }
    const doc = build();
    this.validators.delete(slot);
    this.validators.set(slot, { key, etag: doc.etag, lastModified: doc.lastModified });
    if (this.validators.size > MAX_PRIVATE_VALIDATORS) this.validators.delete(this.validators.keys().next().value!);
    return doc;
  }

  private privateEntries(sub: Subscriber): { key: string; entries: () => FeedEntry[] } {
    if (this.app.config.mode === 'broadcast') {
      const snap = this.current();
      return { key: `published:${snap.key}`, entries: () => snap.entries };
    }
    const sent = this.app.store.deliveries.forSubscriber(sub.id).filter((d) => d.status === 'sent' && d.sentAt);
    const sentAt = new Map(sent.map((d) => [d.installment, new Date(d.sentAt!)]));
    return {
      key: `sent:${sent.length}|${sent.reduce((max, d) => (d.sentAt! > max ? d.sentAt! : max), '')}`,
      entries: () =>
        this.app.store.installments
          .all()
          .flatMap((i) => (sentAt.has(i.number) ? [{ installment: i, date: sentAt.get(i.number)! }] : []))
          .sort((a, b) => b.installment.number - a.installment.number),
    };
  }

  private build(format: FeedFormat, entries: FeedEntry[], id: string, self: FeedIdentity['self']): FeedDocument {
    const last = latest(entries);
    return document(format, buildFeed(format, entries, this.ctx, { id, self, updated: last ?? this.emptySince }), last);
  }

  private current(): Snapshot {
    const { store } = this.app;
    const { key } = store.installments.publishedState();
    if (this.snapshot?.key !== key) {
      const installments = store.installments.published();
      this.snapshot = { key, installments, entries: publishedEntries(installments), docs: {} };
    }
    return this.snapshot;
  }
}
