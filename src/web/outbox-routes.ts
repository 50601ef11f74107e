// The local outbox, shown only when it is the active transport: a newcomer with no mail
// server reads confirmation mail and installments here. It lists every reader's address
// with live confirm and unsubscribe links, so by default only this machine may see it.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isLoopbackHost, type Config } from '../config.ts';
import { listOutbox, readOutbox } from '../deliver/transport.ts';
import type { Pages } from '../pages/pages.ts';

const ANCHOR = /<a\b[^>]*?\bhref="([^"]+)"[^>]*>([\s\S]*?)<\/a>/gi;
const ENTITIES: Record<string, string> = {
  '&amp;': '&',
  '&lt;': '<',
  '&gt;': '>',
  '&quot;': '"',
  '&#39;': "'",
  '&#x27;': "'",
};
const decode = (s: string) => s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (m) => ENTITIES[m] ?? m);

/** The links of a message we rendered ourselves, so they can be clicked outside the sandboxed frame. */
function linksIn(messageHtml: string): Array<{ href: string; label: string }> {
  const seen = new Set<string>();
  const out: Array<{ href: string; label: string }> = [];
  for (const m of messageHtml.matchAll(ANCHOR)) {
    const href = decode(m[1]!);
    if (!/^https?:/i.test(href) || seen.has(href)) continue;
    seen.add(href);
    out.push({
      href,
      label:
        decode(m[2]!.replace(/<[^>]*>/g, ''))
          .replace(/\s+/g, ' ')
          .trim() || href,
    });
  }
  return out;
}

// Headers a reverse proxy adds. Behind a proxy on this machine every reader's request
// arrives from 127.0.0.1, so one that passed through a proxy is never "local".
const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip', 'via'];

const hostOf = (header: string | undefined): string => {
  try {
    return new URL(`http://${header ?? ''}`).hostname;
  } catch {
    return '';
  }
};

/** Asked from this machine, directly: a loopback peer, addressed by a loopback name, through no proxy. */
function isLocal(req: FastifyRequest): boolean {
  const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  return (
    isLoopbackHost(peer) &&
    isLoopbackHost(hostOf(req.headers.host)) &&
    PROXY_HEADERS.every((h) => req.headers[h] === undefined)
  );
}

export function outboxRoutes(deps: { dir: string; pages: Pages; access: Config['server']['outboxPage'] }) {
  const { dir, pages, access } = deps;
  // Refused requests get the ordinary 404: the page's existence is nobody else's business.
  const onRequest = async (req: FastifyRequest, reply: FastifyReply) => {
    if (access === 'public' || isLocal(req)) return;
    reply.callNotFound();
    return reply;
  };
  return (server: FastifyInstance) => {
    if (access === 'off') return;
    server.get('/outbox', { onRequest }, (_req, reply) =>
      reply.type('text/html; charset=utf-8').send(pages.render('outbox', { dir, messages: listOutbox(dir) })),
    );

    server.get<{ Params: { id: string } }>('/outbox/:id', { onRequest }, (req, reply) => {
      const message = readOutbox(dir, req.params.id);
      if (!message) return reply.callNotFound();
      return reply
        .type('text/html; charset=utf-8')
        .send(pages.render('outbox-message', { message, links_in_message: linksIn(message.html) }));
    });

    // The email's own HTML, in a sandbox: no scripts, no same-origin access.
    server.get<{ Params: { id: string } }>('/outbox/:id/html', { onRequest }, (req, reply) => {
      const message = readOutbox(dir, req.params.id);
      if (!message) return reply.callNotFound();
      return reply
        .header(
          'content-security-policy',
          'sandbox allow-popups allow-popups-to-escape-sandbox; ' +
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        )
        .type('text/html; charset=utf-8')
        .send(message.html);
    });
  };
}
