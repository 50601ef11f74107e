// Every URL a reader gets, built from the configured baseUrl. Links that act on a
// subscriber (unsubscribe, next-now) are HMAC-signed rather than stored: nothing to keep
// per email, verifiable without a lookup, and revocable all at once by rotating the
// secret. The MAC covers the subscriber's random feed token too, so a link for a forgotten
// subscriber never works for a later one who happens to get the same row id.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { App } from './app.ts';

export type LinkPurpose = 'unsubscribe' | 'next' | 'read' | 'preferences';

export interface LinkSubject {
  id: number;
  feedToken: string;
}

const MAC_BYTES = 16;

const READER_VALUES: Record<string, (links: Links, sub: LinkSubject) => string> = {
  unsubscribeUrl: (l, s) => l.unsubscribe(s),
  feedUrl: (l, s) => l.privateFeed(s),
  nextUrl: (l, s) => l.next(s),
  readToken: (l, s) => l.readerToken(s),
  preferencesUrl: (l, s) => l.preferences(s),
};

const readerQuery = (token: string | undefined): string => (token ? `?reader=${encodeURIComponent(token)}` : '');

/** The links of this site: its configured address, signed with its secret. */
export const linksFor = (app: Pick<App, 'config' | 'secret'>): Links => new Links(app.config.baseUrl, app.secret);

export class Links {
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly secret: string,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  url(pathAndQuery: string): string {
    return this.base + pathAndQuery;
  }

  home(): string {
    return this.url('/');
  }

  installment(number: number, readerToken?: string): string {
    return this.url(`/installments/${number}${readerQuery(readerToken)}`);
  }

  /**
   * The whole story on one page; `readerToken` (see readerToken) opens it for a reader who has
   * it all before it is public.
   */
  wholeStory(readerToken?: string): string {
    return this.url(`/story${readerQuery(readerToken)}`);
  }

  epub(readerToken?: string): string {
    return this.url(`/story.epub${readerQuery(readerToken)}`);
  }

  /**
   * Lets a reader read online what they were sent (paced mode runs ahead of the public
   * calendar). It names the reader, not an installment: the server checks what they were sent.
   */
  readerToken(sub: LinkSubject): string {
    return this.sign('read', sub);
  }

  /**
   * The reader's own values an email asks for (its placeholders), each made only when
   * asked for: signing is the costly part of a link. The one place they are made, for
   * installments, notices, test sends and previews alike.
   */
  forReader(sub: LinkSubject, names: Iterable<string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of names) {
      const make = READER_VALUES[name];
      if (make) out[name] = make(this, sub);
    }
    return out;
  }

  feed(kind: 'rss' | 'atom' | 'json' = 'atom'): string {
    return this.url(kind === 'rss' ? '/feed.xml' : kind === 'atom' ? '/atom.xml' : '/feed.json');
  }

  privateFeed(sub: LinkSubject, kind: 'rss' | 'atom' = 'atom'): string {
    return this.url(`/feeds/${sub.feedToken}${kind === 'atom' ? '.atom' : ''}.xml`);
  }

  confirm(token: string): string {
    return this.url(`/confirm?token=${encodeURIComponent(token)}`);
  }

  unsubscribe(sub: LinkSubject): string {
    return this.url(`/unsubscribe?token=${this.sign('unsubscribe', sub)}`);
  }

  next(sub: LinkSubject): string {
    return this.url(`/next?token=${this.sign('next', sub)}`);
  }

  /** The reader's calendar: cadence, time of day, time zone, pause. */
  preferences(sub: LinkSubject): string {
    return this.url(`/preferences?token=${this.sign('preferences', sub)}`);
  }

  sign(purpose: LinkPurpose, sub: LinkSubject): string {
    return `${sub.id.toString(36)}.${this.mac(purpose, sub).toString('base64url')}`;
  }

  /** The subscriber id a signed token names, if it is well-formed; call `verify` once the row is loaded. */
  static idOf(token: unknown): number | null {
    if (typeof token !== 'string') return null;
    const m = /^([0-9a-z]{1,12})\.[A-Za-z0-9_-]{22}$/.exec(token);
    return m ? parseInt(m[1]!, 36) : null;
  }

  verify(purpose: LinkPurpose, token: string, sub: LinkSubject): boolean {
    const given = Buffer.from(token.split('.')[1] ?? '', 'base64url');
    const want = this.mac(purpose, sub);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private mac(purpose: LinkPurpose, sub: LinkSubject): Buffer {
    return createHmac('sha256', this.secret)
      .update(`${purpose}|${sub.id}|${sub.feedToken}`)
      .digest()
      .subarray(0, MAC_BYTES);
  }
}
