// Each visitor's CSRF secret (a cookie) and the form tokens made from it, which
// @fastify/csrf-protection checks posts against. Most views of a public page are first
// visits, so a new secret is the common case: its randomness is drawn in bulk and its
// Set-Cookie header written from a template, where the plugins did both again per request.
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The secret's cookie: the name @fastify/csrf-protection is registered with. */
export const CSRF_COOKIE = '_csrf';
/** As many random bytes as @fastify/csrf puts in a secret. */
const SECRET_BYTES = 18;
/** Secrets drawn per call to the random source (as crypto.randomUUID keeps a batch). */
const BATCH = 256;

export interface CsrfCookieOptions {
  path: string;
  sameSite: 'strict';
  httpOnly: boolean;
  secure: boolean;
}

export class VisitorCsrf {
  private batch = Buffer.alloc(0);
  private used = 0;
  private readonly cookieAround: [string, string];

  /** `server` must have @fastify/cookie and @fastify/csrf-protection (cookie-kept secret) registered. */
  constructor(server: FastifyInstance, cookie: CsrfCookieOptions) {
    const slot = 'S'.repeat(32);
    const [head, tail] = server.serializeCookie(CSRF_COOKIE, slot, cookie).split(slot);
    this.cookieAround = [head!, tail!];
  }

  /** The visitor's secret from their cookie, if they sent one. */
  secretOf(req: FastifyRequest): string | undefined {
    const secret = req.cookies[CSRF_COOKIE];
    return secret === '' ? undefined : secret;
  }

  /** A form token bound to the visitor's secret; a visitor without one is given one (and its cookie) first. */
  token(req: FastifyRequest, reply: FastifyReply): { token: string; secret: string } {
    let secret = this.secretOf(req);
    if (secret === undefined) {
      secret = this.newSecret();
      reply.header('set-cookie', this.cookieAround[0] + secret + this.cookieAround[1]);
      // The plugin makes the token from the secret in request.cookies, where the visitor's next request brings it.
      req.cookies[CSRF_COOKIE] = secret;
    }
    return { token: reply.generateCsrf(), secret };
  }

  /** Names the visitor's secret without giving it away: what their copy of a page is valid for. */
  tag(secret: string): string {
    return createHash('sha256').update(secret).digest('base64url').slice(0, 22);
  }

  private newSecret(): string {
    if (this.used === this.batch.length) {
      this.batch = randomBytes(SECRET_BYTES * BATCH);
      this.used = 0;
    }
    this.used += SECRET_BYTES;
    return this.batch.toString('base64url', this.used - SECRET_BYTES, this.used);
  }
}
