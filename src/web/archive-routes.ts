// One web page per published installment, the whole story on one page and as an EPUB once
// it is all published. An unpublished number answers exactly like a number past the end of
// the story (404), so nothing can be read, or counted, ahead of its publication.
//
// Except by the reader it was sent to: paced readers run ahead of the public calendar, and
// their emails' links carry a signed reader token (`?reader=`) that opens exactly what that
// reader was sent. Those pages are private: never stored by caches, never indexed, and the
// token never leaves in a Referer (the server's referrer-policy is no-referrer).
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Links } from '../links.ts';
import { buildEpub, EPUB_CONTENT_TYPE } from '../publish/epub.ts';
import type { FeedCache } from '../publish/feeds.ts';
import { installmentPage, whole, wholeStoryPage, type ArchiveDeps, type Readable } from '../pages/site.ts';
import type { StoredInstallment } from '../store/installments.ts';
import { PageCache } from './page-cache.ts';
import { sendHtml } from './reply.ts';

const INSTALLMENT_NUMBER = /^[1-9][0-9]{0,8}$/;

/** The EPUB's bytes, built again only when the text of some installment changed. */
function epubCache(deps: ArchiveDeps): (installments: StoredInstallment[]) => Buffer {
  let cached: { key: string; bytes: Buffer } | undefined;
  return (installments) => {
    const key = installments.map((i) => `${i.hash}|${i.publishedAt ?? ''}`).join(',');
    if (cached?.key !== key)
      cached = { key, bytes: buildEpub(deps.app.info, installments, { homeUrl: deps.links.home() }) };
    return cached.bytes;
  };
}

/** A file name for the download: the title in plain ASCII words. */
const epubFileName = (title: string): string =>
  `${
    title
      .normalize('NFKD')
      .replace(/[^\w\s-]/g, '')
      .trim()
      .replace(/\s+/g, '-')
      .toLowerCase() || 'story'
  }.epub`;

export function archiveRoutes(deps: ArchiveDeps & { feeds: FeedCache }) {
  const { app, links, feeds } = deps;
  const epub = epubCache(deps);

  /** What this request may read; null for a reader token that is not valid. */
  const readableFor = (query: unknown): Readable | null => {
    const published = feeds.published();
    const total = app.store.installments.count().total;
    const token = (query as { reader?: unknown }).reader;
    if (token === undefined) return { installments: published, total };
    const id = Links.idOf(token);
    const sub = id === null ? undefined : app.store.subscribers.get(id);
    if (!sub || !links.verify('read', token as string, sub)) return null;
    const sent = (n: number) => sub.position >= n || app.store.deliveries.get(sub.id, n)?.status === 'sent';
    return {
      installments: app.store.installments.all().filter((i) => i.publishedAt || sent(i.number)),
      total,
      readerToken: token as string,
    };
  };

  /** A reader's pages are theirs alone: not kept by any cache, not indexed. */
  const privately = (reply: FastifyReply, readable: Readable): FastifyReply =>
    readable.readerToken === undefined
      ? reply
      : reply.header('cache-control', 'no-store').header('x-robots-tag', 'noindex, nofollow');

  return (server: FastifyInstance) => {
    const publicPages = new PageCache(() => app.store.installments.publishedState().key, server.visitorCsrf);

    server.get<{ Params: { n: string } }>('/installments/:n', (req, reply) => {
      if (!INSTALLMENT_NUMBER.test(req.params.n)) return reply.callNotFound();
      const number = Number(req.params.n);
      if ((req.query as { reader?: unknown }).reader === undefined) {
        const sent = publicPages.send(req, reply, `/installments/${number}`, (csrf) =>
          installmentPage(deps, readableFor({})!, number, csrf),
        );
        return sent ?? reply.callNotFound();
      }
      const readable = readableFor(req.query);
      const page = readable && installmentPage(deps, readable, number, null);
      if (!page) return reply.callNotFound();
      return sendHtml(privately(reply, readable), 200, page);
    });

    server.get('/story', (req, reply) => {
      const readable = readableFor(req.query);
      const page = readable && wholeStoryPage(deps, readable);
      if (!page) return reply.callNotFound();
      return sendHtml(privately(reply, readable), 200, page);
    });

    server.get('/story.epub', (req, reply) => {
      const readable = readableFor(req.query);
      if (!readable || !whole(readable)) return reply.callNotFound();
      return privately(reply, readable)
        .type(EPUB_CONTENT_TYPE)
        .header('content-disposition', `attachment; filename="${epubFileName(app.info.title)}"`)
        .send(epub(readable.installments));
    });
  };
}
