// `feuilleton export DIR`: the public site as static files (the three feeds, the home page,
// one page per published installment) for hosting without the server. Everything comes
// from the same feed builder, templates and page renderer as the routes; URLs stay
// absolute from baseUrl, so the copy belongs at baseUrl (installments/N/index.html answers
// /installments/N on the usual static hosts).
//
// A static copy cannot take subscriptions (no server to post to, no CSRF cookie to match),
// so its pages leave the subscribe form out; the feed links in every page's layout remain.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { App } from '../app.ts';
import { Links } from '../links.ts';
import type { StoredInstallment } from '../store/installments.ts';
import { installmentPage, type ArchiveDeps } from '../web/archive-routes.ts';
import { Pages } from '../web/pages.ts';
import { FeedCache } from './feeds.ts';

/** home.eta always includes the form; cut out exactly the fragment it rendered there. */
function homeWithoutForm(pages: Pages, published: StoredInstallment[], total: number): string {
  const data = { published, total, csrf: '' };
  return pages.render('home', data).replace(pages.render('subscribe-form', data), '');
}

/** Writes the site into `dir` (created if needed, nothing else in it touched); returns the files written, relative to `dir`. */
export async function exportStatic(app: App, dir: string): Promise<string[]> {
  const links = new Links(app.config.baseUrl, app.secret);
  const deps: ArchiveDeps = { app, links, pages: new Pages(app.config.paths.templates, { info: app.info, links, outboxEnabled: false }) };
  const feeds = new FeedCache(app);
  const published = feeds.published();
  const files: Array<[string, string | Buffer]> = [
    ['feed.xml', feeds.feed('rss').body()],
    ['atom.xml', feeds.feed('atom').body()],
    ['feed.json', feeds.feed('json').body()],
    ['index.html', homeWithoutForm(deps.pages, published, app.store.installments.count().total)],
    ...published.map((i): [string, string] => [`installments/${i.number}/index.html`, installmentPage(deps, published, i.number, null)!]),
  ];
  for (const [file, content] of files) {
    const target = path.join(dir, file);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, content);
  }
  return files.map(([file]) => file);
}
