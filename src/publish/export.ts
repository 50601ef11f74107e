// `feuilleton export DIR`: the public site as static files (the three feeds, the home page,
// one page per published installment, and once the story is complete the whole of it as a
// page and an EPUB) for hosting without the server. Everything comes from the same feed
// builder, templates and page renderer as the routes; URLs stay
// absolute from baseUrl, so the copy belongs at baseUrl (installments/N/index.html answers
// /installments/N on the usual static hosts).
//
// A static copy cannot take subscriptions (no server to post to, no CSRF cookie to match),
// so its pages leave the subscribe form out; the feed links in every page's layout remain.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { App } from '../app.ts';
import { UserError } from '../errors.ts';
import { linksFor } from '../links.ts';
import { homePage, installmentPage, wholeStoryPage, type ArchiveDeps } from '../pages/site.ts';
import { Pages } from '../pages/pages.ts';
import { buildEpub } from './epub.ts';
import { FeedCache } from './feeds.ts';

/**
 * Writes the site into `dir` (created if needed, nothing else in it touched); returns the
 * files written, relative to `dir`.
 */
export async function exportStatic(app: App, dir: string): Promise<string[]> {
  const links = linksFor(app);
  const deps: ArchiveDeps = {
    app,
    links,
    pages: new Pages(app.config.paths.templates, { info: app.info, links, outboxEnabled: false }),
  };
  const feeds = new FeedCache(app);
  const published = feeds.published();
  const readable = { installments: published, total: app.store.installments.count().total };
  const files: Array<[string, string | Buffer]> = [
    ['feed.xml', feeds.feed('rss').body()],
    ['atom.xml', feeds.feed('atom').body()],
    ['feed.json', feeds.feed('json').body()],
    ['index.html', homePage(deps, published, null)],
    ...published.map((i): [string, string] => [
      `installments/${i.number}/index.html`,
      installmentPage(deps, readable, i.number, null)!,
    ]),
  ];
  // Once the story is complete, the whole of it too, at the addresses the pages link to.
  const whole = wholeStoryPage(deps, readable);
  if (whole)
    files.push(['story/index.html', whole], ['story.epub', buildEpub(app.info, published, { homeUrl: links.home() })]);
  try {
    for (const [file, content] of files) {
      const target = path.join(dir, file);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, content);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!code) throw err;
    throw new UserError(
      `${path.resolve(dir)}: cannot write the static site there (${code}); ` +
        'give a folder you can write to (it is created if missing)',
    );
  }
  return files.map(([file]) => file);
}
