// What every HTML route answers with, where a signed token may arrive, and conditional GETs.
import type { FastifyReply, FastifyRequest } from 'fastify';

export const sendHtml = (reply: FastifyReply, status: number, body: string | Buffer): FastifyReply =>
  reply.code(status).type('text/html; charset=utf-8').send(body);

type Form = Record<string, unknown>;

/** A token may come in the query string (links, List-Unsubscribe) or a form field (our buttons). */
export const tokenOf = (req: FastifyRequest): unknown =>
  (req.query as Form).token ?? ((req.body as Form | undefined) ?? {}).token;

const opaque = (etag: string): string => (etag.startsWith('W/') ? etag.slice(2) : etag);

/**
 * Whether If-None-Match names `etag` or is "*" (RFC 9110 §13.1.2, weak comparison), so a GET
 * is answered 304; undefined when the request has no If-None-Match.
 */
export function noneMatch(req: FastifyRequest, etag: string): boolean | undefined {
  const header = req.headers['if-none-match'];
  if (header === undefined) return undefined;
  const wanted = opaque(etag);
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || opaque(t) === wanted;
  });
}
