// One web page per published installment. An unpublished number answers exactly like a
// number past the end of the story (404), so nothing can be read, or counted, ahead of its
// publication.
import type { FastifyInstance } from 'fastify';
import type { App } from '../app.ts';
import type { Links } from '../links.ts';
import { feedCache } from '../publish/feeds.ts';
import { installmentHtml, ratingNotice } from '../render/fragment.ts';
import type { StoredInstallment } from '../store/installments.ts';
import type { Pages } from './pages.ts';
import { sendHtml } from './reply.ts';

export interface ArchiveDeps {
  app: App;
  pages: Pages;
  links: Links;
}

const INSTALLMENT_NUMBER = /^[1-9][0-9]{0,8}$/;

/**
 * The page of installment `number` if it is among `published` (ascending), else null.
 * `csrf` adds the subscribe form; a static copy has no server to post it to.
 */
export function installmentPage(deps: ArchiveDeps, published: StoredInstallment[], number: number, csrf: string | null): string | null {
  const at = published.findIndex((i) => i.number === number);
  if (at < 0) return null;
  const inst = published[at]!;
  const minutes = Math.max(1, inst.minutes);
  return deps.pages.render('installment', {
    pageTitle: inst.title,
    canonical: deps.links.installment(inst.number),
    inst,
    readingTime: `About ${minutes} minute${minutes === 1 ? '' : 's'}`,
    notice: ratingNotice(deps.app.info),
    story: installmentHtml(inst.blocks),
    prev: published[at - 1],
    next: published[at + 1],
    csrf,
  });
}

export function archiveRoutes(deps: ArchiveDeps) {
  const feeds = feedCache(deps.app);
  return (server: FastifyInstance) => {
    server.get<{ Params: { n: string } }>('/installments/:n', (req, reply) => {
      const page = INSTALLMENT_NUMBER.test(req.params.n) ? installmentPage(deps, feeds.published(), Number(req.params.n), reply.generateCsrf()) : null;
      if (!page) return reply.callNotFound();
      return sendHtml(reply, 200, page);
    });
  };
}
