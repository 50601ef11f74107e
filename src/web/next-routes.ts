// Paced mode's catch-up: "send me the next one now" and "send me the rest". GET only shows
// a button (mail scanners follow links); POST sends, the next one rate limited per reader.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { App } from '../app.ts';
import { SenderBusyError, sendNext, sendRest, type SendContext } from '../deliver/send.ts';
import { Links } from '../links.ts';
import type { Subscriber } from '../store/subscribers.ts';
import type { Subscriptions } from '../subscribers/service.ts';
import type { Pages } from '../pages/pages.ts';
import { sendHtml, tokenOf } from './reply.ts';

export function nextRoutes(deps: {
  app: App;
  pages: Pages;
  subscriptions: Subscriptions;
  send: SendContext;
  links: Links;
}) {
  const { app, pages, subscriptions, send, links } = deps;
  const page = (reply: FastifyReply, status: number, heading: string, text: string, token?: string, sub?: Subscriber) =>
    sendHtml(
      reply,
      status,
      pages.message({
        pageTitle: heading,
        heading,
        paragraphs: [text],
        action: token ? { url: '/next', label: 'Send me the next installment', fields: { token } } : undefined,
        // The rest of the story at once, and the reader's calendar, are on their calendar page.
        nextSteps: sub
          ? [{ url: links.preferences(sub), label: 'Send me the rest, or change when installments come' }]
          : undefined,
      }),
    );

  /** A reader who has had every installment: asking for the next one is answered, never counted or sent. */
  const finished = (sub: Subscriber): boolean => sub.position >= app.store.installments.count().total;
  const theEnd = (reply: FastifyReply, sub: Subscriber) =>
    sendHtml(
      reply,
      200,
      pages.message({
        pageTitle: 'The End',
        heading: 'That was the end',
        paragraphs: [`You have every installment of ${app.info.title}: there is no next one. Thank you for reading!`],
        nextSteps: [
          { url: links.wholeStory(links.readerToken(sub)), label: 'Read the whole story' },
          { url: links.epub(links.readerToken(sub)), label: 'Download the EPUB' },
        ],
      }),
    );

  return (server: FastifyInstance) => {
    if (app.config.mode !== 'paced') return;
    server.get('/next', (req, reply) => {
      const sub = subscriptions.bySignedToken('next', tokenOf(req));
      if (!sub || sub.status !== 'active')
        return page(reply, 400, 'This link cannot be used', 'This link is not valid for an active subscription.');
      if (finished(sub)) return theEnd(reply, sub);
      return page(
        reply,
        200,
        'Next installment',
        `Send the next installment of ${app.info.title} to ${sub.email} now?`,
        String(tokenOf(req)),
        sub,
      );
    });

    // Once per reader by nature (after it there is no rest), so no rate limit of its own.
    server.post('/rest', async (req, reply) => {
      const sub = subscriptions.bySignedToken('next', tokenOf(req));
      if (!sub || sub.status !== 'active')
        return page(reply, 400, 'This link cannot be used', 'This link is not valid for an active subscription.');
      const r = await sendRest(send, sub.id);
      if (r.status !== 'sent') return theEnd(reply, sub);
      return page(
        reply,
        200,
        'On its way',
        `The rest of ${app.info.title}, from installment ${r.from}, is on its way to ${sub.email}: ` +
          'one email with the whole story to read online and as an EPUB.',
      );
    });

    server.post(
      '/next',
      {
        config: {
          rateLimit: {
            max: app.config.delivery.nextNowPerHour,
            timeWindow: 3_600_000,
            // After the body is parsed: the button posts the reader's token as a form field.
            hook: 'preHandler',
            keyGenerator: (req) => `next:${Links.idOf(tokenOf(req)) ?? req.ip}`,
            // Asking past the end sends nothing, so it does not use up the reader's requests.
            allowList: (req) => {
              const sub = subscriptions.bySignedToken('next', tokenOf(req));
              return sub !== undefined && finished(sub);
            },
            errorResponseBuilder: (_req, ctx) => ({
              statusCode: 429,
              message: `You have asked for several installments already; the next one can be sent in ${ctx.after}.`,
            }),
          },
        },
      },
      async (req, reply) => {
        const sub = subscriptions.bySignedToken('next', tokenOf(req));
        if (!sub || sub.status !== 'active')
          return page(reply, 400, 'This link cannot be used', 'This link is not valid for an active subscription.');
        if (finished(sub)) return theEnd(reply, sub);
        try {
          const r = await sendNext(send, sub.id);
          if (r.status === 'finished') return theEnd(reply, sub);
          if (r.status !== 'sent')
            return page(reply, 503, 'Not sent', 'The installment could not be sent just now. Please try again later.');
          return page(reply, 200, 'On its way', `Installment ${r.installment} is on its way to ${sub.email}.`);
        } catch (err) {
          if (err instanceof SenderBusyError)
            return page(reply, 503, 'Busy', 'A delivery run is in progress. Please try again in a few minutes.');
          throw err;
        }
      },
    );
  };
}
