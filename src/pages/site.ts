// The site's pages as HTML: the home page, an installment, the whole story. The server
// serves them (src/web) and `export` writes them as files (src/publish); neither needs the other.
import type { App } from '../app.ts';
import type { Links } from '../links.ts';
import { installmentHtml, ratingNotice, readingBlocks } from '../render/fragment.ts';
import type { StoredInstallment } from '../store/installments.ts';
import type { Pages } from './pages.ts';

export interface ArchiveDeps {
  app: App;
  pages: Pages;
  links: Links;
}

const minutesText = (minutes: number): string =>
  `About ${Math.max(1, minutes)} minute${Math.max(1, minutes) === 1 ? '' : 's'}`;

/** What one visitor may read: the published installments, plus what a reader token's reader was sent. */
export interface Readable {
  /** Ascending by number. */
  installments: StoredInstallment[];
  total: number;
  /** Set when a reader token opened more than the public site. */
  readerToken?: string;
}

/** The whole story is there for this visitor: every installment, published or sent to them. */
export const whole = (r: Readable): boolean => r.total > 0 && r.installments.length === r.total;

/**
 * The page of installment `number` if the visitor may read it, else null. `csrf` adds the
 * subscribe form; a static copy has no server to post it to, and a reader needs none.
 */
export function installmentPage(
  deps: ArchiveDeps,
  readable: Readable,
  number: number,
  csrf: string | null,
): string | null {
  const list = readable.installments;
  const at = list.findIndex((i) => i.number === number);
  if (at < 0) return null;
  const inst = list[at]!;
  const token = readable.readerToken;
  const last = number === readable.total;
  return deps.pages.render('installment', {
    pageTitle: inst.title,
    // A reader's private copy of a page not yet public has no public address to point at.
    canonical: inst.publishedAt ? deps.links.installment(inst.number) : null,
    noindex: token !== undefined,
    inst,
    part: `Part ${inst.number} of ${readable.total}`,
    readingTime: minutesText(inst.minutes),
    notice: ratingNotice(deps.app.info),
    // The header is the story's cover: shown where a reader starts.
    showDetails: inst.number === 1,
    story: installmentHtml(readingBlocks(inst)),
    prev: list[at - 1] && { title: list[at - 1]!.title, url: deps.links.installment(list[at - 1]!.number, token) },
    next: list[at + 1] && { title: list[at + 1]!.title, url: deps.links.installment(list[at + 1]!.number, token) },
    ending:
      last && whole(readable) ? { wholeStoryUrl: deps.links.wholeStory(token), epubUrl: deps.links.epub(token) } : null,
    csrf: token === undefined ? csrf : null,
  });
}

/** The home page: the story's cover, its contents so far, and (with `csrf`) the subscribe form. */
export function homePage(
  deps: ArchiveDeps,
  published: StoredInstallment[],
  csrf: string | null,
  form: { formError?: string; email?: string } = {},
): string {
  return deps.pages.render('home', {
    published,
    total: deps.app.store.installments.count().total,
    notice: ratingNotice(deps.app.info),
    csrf,
    ...form,
  });
}

/** The whole story on one page, or null until the visitor may read all of it. */
export function wholeStoryPage(deps: ArchiveDeps, readable: Readable): string | null {
  if (!whole(readable)) return null;
  const token = readable.readerToken;
  return deps.pages.render('story', {
    pageTitle: 'The whole story',
    canonical: token === undefined ? deps.links.wholeStory() : null,
    noindex: token !== undefined,
    notice: ratingNotice(deps.app.info),
    minutes: readable.installments.reduce((sum, i) => sum + i.minutes, 0),
    parts: readable.installments.map((i) => ({
      number: i.number,
      title: i.title,
      story: installmentHtml(readingBlocks(i)),
    })),
    epubUrl: deps.links.epub(token),
  });
}
