// The local outbox, shown only when it is the active transport: a newcomer with no mail
// server reads confirmation mail and installments here.
import type { FastifyInstance } from 'fastify';
import { listOutbox, readOutbox } from '../deliver/transport.ts';
import type { Pages } from './pages.ts';

const ANCHOR = /<a\b[^>]*?\bhref="([^"]+)"[^>]*>([\s\S]*?)<\/a>/gi;
const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&#x27;': "'" };
const decode = (s: string) => s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (m) => ENTITIES[m] ?? m);

/** The links of a message we rendered ourselves, so they can be clicked outside the sandboxed frame. */
function linksIn(messageHtml: string): Array<{ href: string; label: string }> {
  const seen = new Set<string>();
  const out: Array<{ href: string; label: string }> = [];
  for (const m of messageHtml.matchAll(ANCHOR)) {
    const href = decode(m[1]!);
    if (!/^https?:/i.test(href) || seen.has(href)) continue;
    seen.add(href);
    out.push({ href, label: decode(m[2]!.replace(/<[^>]*>/g, '')).replace(/\s+/g, ' ').trim() || href });
  }
  return out;
}

export function outboxRoutes(deps: { dir: string; pages: Pages }) {
  const { dir, pages } = deps;
  return (server: FastifyInstance) => {
    server.get('/outbox', (_req, reply) => reply.type('text/html; charset=utf-8').send(pages.render('outbox', { dir, messages: listOutbox(dir) })));

    server.get<{ Params: { id: string } }>('/outbox/:id', (req, reply) => {
      const message = readOutbox(dir, req.params.id);
      if (!message) return reply.callNotFound();
      return reply.type('text/html; charset=utf-8').send(pages.render('outbox-message', { message, links_in_message: linksIn(message.html) }));
    });

    // The email's own HTML, in a sandbox: no scripts, no same-origin access.
    server.get<{ Params: { id: string } }>('/outbox/:id/html', (req, reply) => {
      const message = readOutbox(dir, req.params.id);
      if (!message) return reply.callNotFound();
      return reply
        .header('content-security-policy', "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
        .type('text/html; charset=utf-8')
        .send(message.html);
    });
  };
}
