// Public pages rendered once per published state, not once per request, and kept as the
// bytes sent. A page that carries the subscribe form is rendered with a stand-in for the
// visitor's CSRF token, cut there once, and joined with each visitor's own token as it is
// served. Its entity tag names the page and the visitor's secret: a visitor whose copy
// holds a token still good for their cookie gets a 304, with no page or token made.
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { noneMatch, sendHtml } from './reply.ts';
import type { VisitorCsrf } from './visitor-csrf.ts';

/** Letters and digits: passes the templates' escaping unchanged, and no story text holds it. */
export const CSRF_SLOT = `csrfslot${randomBytes(12).toString('hex')}`;

/** A rendered page (the bytes around its tokens' places), or null for one that does not exist. */
type Entry = { parts: Buffer[]; tag: string } | null;

/** Each visitor's copy differs by its token, so the page is theirs to keep, and checked again on every visit. */
const CACHE_CONTROL = 'private, no-cache';

export class PageCache {
  private key: string | undefined;
  private checked = false;
  private readonly pages = new Map<string, Entry>();

  /** `state` names what the pages depend on: when it changes, every page is rendered again. */
  constructor(
    private readonly state: () => string,
    private readonly csrf: VisitorCsrf,
  ) {}

  /** Answers with the page at `path` (made by `render` with CSRF_SLOT); null, sending nothing, when there is none. */
  send(
    req: FastifyRequest,
    reply: FastifyReply,
    path: string,
    render: (csrfSlot: string) => string | null,
  ): FastifyReply | null {
    const entry = this.entry(path, render);
    if (entry === null) return null;
    reply.header('cache-control', CACHE_CONTROL);
    if (entry.parts.length === 1) {
      const etag = `"${entry.tag}"`;
      reply.header('etag', etag);
      return noneMatch(req, etag) ? reply.code(304).send() : sendHtml(reply, 200, entry.parts[0]!);
    }
    reply.header('vary', 'cookie');
    const known = this.csrf.secretOf(req);
    const knownEtag = known === undefined ? undefined : `W/"${entry.tag}.${this.csrf.tag(known)}"`;
    if (knownEtag !== undefined && noneMatch(req, knownEtag)) return reply.header('etag', knownEtag).code(304).send();
    const { token, secret } = this.csrf.token(req, reply);
    const etag = secret === known ? knownEtag! : `W/"${entry.tag}.${this.csrf.tag(secret)}"`;
    const bytes = Buffer.from(token, 'latin1');
    const body = entry.parts.flatMap((part, i) => (i === 0 ? [part] : [bytes, part]));
    return sendHtml(reply.header('etag', etag), 200, Buffer.concat(body));
  }

  private entry(path: string, render: (csrfSlot: string) => string | null): Entry {
    // Asked once per turn of the event loop: the requests read in one turn are answered as
    // if they had all arrived at its start, and a busy server asks the database far less.
    if (!this.checked) {
      this.checked = true;
      setImmediate(() => (this.checked = false));
      const key = this.state();
      if (key !== this.key) {
        this.key = key;
        this.pages.clear();
      }
    }
    let entry = this.pages.get(path);
    if (entry === undefined) {
      const page = render(CSRF_SLOT);
      entry = page === null ? null : cut(page);
      this.pages.set(path, entry);
    }
    return entry;
  }
}

function cut(page: string): Entry {
  const parts = page.split(CSRF_SLOT).map((p) => Buffer.from(p));
  const hash = createHash('sha256');
  // Where the token goes is part of the page.
  for (const p of parts) hash.update(`${p.length}:`).update(p);
  return { parts, tag: hash.digest('base64url').slice(0, 22) };
}
