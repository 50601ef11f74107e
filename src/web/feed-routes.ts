// The public feeds and each subscriber's private feed, with validators so polling readers
// mostly get a 304: feed readers poll every few minutes, forever.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { App } from '../app.ts';
import { FEED_CONTENT_TYPES, type FeedCache, type FeedDocument, type FeedFormat } from '../publish/feeds.ts';
import type { Pages } from '../pages/pages.ts';
import { noneMatch, sendHtml } from './reply.ts';

const PUBLIC_FEEDS: Array<[string, FeedFormat]> = [
  ['/feed.xml', 'rss'],
  ['/atom.xml', 'atom'],
  ['/feed.json', 'json'],
];

// Private feed URLs are secrets (they name a reader): no shared cache may keep them.
const PUBLIC_CACHE = 'public, max-age=300';
const PRIVATE_CACHE = 'private, max-age=300';

/** `<token>.xml` is RSS, `<token>.atom.xml` Atom (see Links.privateFeed). */
const PRIVATE_FILE = /^([A-Za-z0-9_-]{1,64})(\.atom)?\.xml$/;

/** RFC 9110 §13.1: If-None-Match (weak comparison) wins; If-Modified-Since only without it. */
function notModified(req: FastifyRequest, doc: FeedDocument): boolean {
  const matched = noneMatch(req, doc.etag);
  if (matched !== undefined) return matched;
  const since = Date.parse(req.headers['if-modified-since'] ?? '');
  // HTTP dates have whole seconds; the stored date has milliseconds.
  return (
    !Number.isNaN(since) && doc.lastModified !== null && Math.floor(doc.lastModified.getTime() / 1000) * 1000 <= since
  );
}

function sendFeed(req: FastifyRequest, reply: FastifyReply, doc: FeedDocument, cacheControl: string) {
  reply.header('etag', doc.etag).header('cache-control', cacheControl);
  if (doc.lastModified) reply.header('last-modified', doc.lastModified.toUTCString());
  if (notModified(req, doc)) return reply.code(304).send();
  return reply.type(FEED_CONTENT_TYPES[doc.format]).send(doc.body());
}

export function feedRoutes(deps: { app: App; pages: Pages; feeds: FeedCache }) {
  const { app, pages, feeds } = deps;

  return (server: FastifyInstance) => {
    for (const [path, format] of PUBLIC_FEEDS)
      server.get(path, (req, reply) => sendFeed(req, reply, feeds.feed(format), PUBLIC_CACHE));

    server.get<{ Params: { file: string } }>('/feeds/:file', (req, reply) => {
      const m = PRIVATE_FILE.exec(req.params.file);
      const sub = m ? app.store.subscribers.byFeedToken(m[1]!) : undefined;
      // Pending readers have not been given the URL yet: to them it does not exist either.
      if (!sub || sub.status === 'pending') return reply.callNotFound();
      if (sub.status !== 'active') {
        return sendHtml(
          reply,
          410,
          pages.message({
            pageTitle: 'Feed ended',
            heading: 'This feed has ended',
            paragraphs: [
              `This private feed of ${app.info.title} belonged to a subscription that has ended. ` +
                'The public feeds are linked below.',
            ],
          }),
        );
      }
      return sendFeed(req, reply, feeds.privateFeed(sub, m![2] ? 'atom' : 'rss'), PRIVATE_CACHE);
    });
  };
}
