// The HTTP front: Fastify with its own plugins for the generic parts (form bodies, cookies,
// CSRF, rate limits); route modules add the pages. Security headers are set on every reply.
import Fastify, { type FastifyInstance } from 'fastify';
import formbody from '@fastify/formbody';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import rateLimit from '@fastify/rate-limit';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Pages } from '../pages/pages.ts';
import { sendHtml } from './reply.ts';
import { CSRF_COOKIE, VisitorCsrf } from './visitor-csrf.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Form tokens for the pages routes serve (POSTs are checked by server.csrfProtection). */
    visitorCsrf: VisitorCsrf;
  }
}

export type RouteModule = (server: FastifyInstance) => void | Promise<void>;

export interface ServerOptions {
  config: Config;
  pages: Pages;
  logger: Logger | false;
  routes: RouteModule[];
}

// Pages use one inline <style> and no scripts; forms post only to us; tokens in URLs must
// not leak to other sites through Referer.
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; " +
  "frame-src 'self'; frame-ancestors 'self'; base-uri 'none'";

const SECURITY_HEADERS: Array<[string, string]> = [
  ['content-security-policy', CONTENT_SECURITY_POLICY],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'no-referrer'],
  ['x-frame-options', 'SAMEORIGIN'],
];

/** fastify wants its own copy of the proxy list (config is read-only). */
const trustProxy = (t: Config['server']['trustProxy']): string | false | string[] =>
  typeof t === 'object' ? [...t] : t;

export async function createServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { config, pages } = opts;
  const common = { bodyLimit: config.subscribe.maxBodyBytes, trustProxy: trustProxy(config.server.trustProxy) };
  // pino's Logger is a FastifyBaseLogger; the cast only drops the narrower generic.
  const server = (opts.logger
    ? Fastify({ ...common, loggerInstance: opts.logger })
    : Fastify({ ...common, logger: false })) as unknown as FastifyInstance;

  await server.register(formbody, { bodyLimit: config.subscribe.maxBodyBytes });
  // RFC 8058 one-click unsubscribe may arrive as multipart/form-data; the signed token in
  // the URL is what authorizes it, so the body only needs to be accepted, not parsed.
  server.addContentTypeParser('multipart/form-data', { parseAs: 'string' }, (_req, body, done) =>
    done(null, { raw: body }),
  );
  await server.register(cookie);
  const cookieOpts = {
    path: '/',
    sameSite: 'strict',
    httpOnly: true,
    secure: config.baseUrl.startsWith('https:'),
  } as const;
  await server.register(csrf, { sessionPlugin: '@fastify/cookie', cookieKey: CSRF_COOKIE, cookieOpts });
  server.decorate('visitorCsrf', new VisitorCsrf(server, cookieOpts));
  await server.register(rateLimit, { global: false });

  // A callback, not an async hook: no promise to make and settle for every reply.
  server.addHook('onSend', (_req, reply, payload, done) => {
    for (const [k, v] of SECURITY_HEADERS) if (!reply.hasHeader(k)) reply.header(k, v);
    done(null, payload);
  });

  for (const route of opts.routes) await route(server);

  server.setNotFoundHandler((req, reply) => {
    sendHtml(
      reply,
      404,
      pages.message({
        pageTitle: 'Not found',
        heading: 'Page not found',
        paragraphs: [`There is nothing at ${req.url.split('?')[0]}.`],
      }),
    );
  });

  server.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    const text =
      status === 413
        ? 'The request was too large.'
        : status === 403
          ? 'The form expired or did not come from this site. Go back, reload the page and try again.'
          : status >= 500
            ? 'Something went wrong on our side. Please try again later.'
            : err.message;
    sendHtml(
      reply,
      status,
      pages.message({ pageTitle: 'Error', heading: status === 403 ? 'Please try again' : 'Sorry', paragraphs: [text] }),
    );
  });

  return server;
}
