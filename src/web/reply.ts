// What every HTML route answers with, and where a signed token may arrive.
import type { FastifyReply, FastifyRequest } from 'fastify';

export const sendHtml = (reply: FastifyReply, status: number, body: string): FastifyReply =>
  reply.code(status).type('text/html; charset=utf-8').send(body);

type Form = Record<string, unknown>;

/** A token may come in the query string (links, List-Unsubscribe) or a form field (our buttons). */
export const tokenOf = (req: FastifyRequest): unknown =>
  (req.query as Form).token ?? ((req.body as Form | undefined) ?? {}).token;
