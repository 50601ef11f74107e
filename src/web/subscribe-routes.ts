// Home page, subscribe form, confirmation and unsubscribe. Links in emails only ever show
// a page on GET: mail scanners prefetch them, so every change needs a POST.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { App } from '../app.ts';
import type { FeedCache } from '../publish/feeds.ts';
import { InvalidEmailError } from '../subscribers/address.ts';
import type { Subscriptions } from '../subscribers/service.ts';
import { homePage } from '../pages/site.ts';
import type { Pages } from '../pages/pages.ts';
import { PageCache } from './page-cache.ts';
import { calendarPage } from './preferences-routes.ts';
import { sendHtml, tokenOf } from './reply.ts';

type Form = Record<string, unknown>;

const ON_ITS_WAY = 'If that address can subscribe, a confirmation email is on its way.';

const CONFIRM_FAILURES = {
  unknown: 'This confirmation link is not valid. Check that you copied the whole link, or subscribe again.',
  used: 'This confirmation link has already been used. If you are not subscribed, subscribe again to get a new link.',
  expired: 'This confirmation link has expired. Subscribe again and we will send you a fresh one.',
} as const;

export function subscribeRoutes(deps: { app: App; pages: Pages; subscriptions: Subscriptions; feeds: FeedCache }) {
  const { app, pages, subscriptions, feeds } = deps;
  const { links } = pages.common;
  const { config } = app;

  // The feed cache holds the published list until something is published: no story text is read per request.
  const home = (reply: FastifyReply, status: number, form: { formError?: string; email?: string } = {}) =>
    sendHtml(reply, status, homePage({ app, pages, links }, feeds.published(), reply.generateCsrf(), form));

  /** Broadcast with every installment out: a new subscriber has nothing more to wait for. */
  const complete = (): boolean => {
    const { total, published } = app.store.installments.count();
    return config.mode === 'broadcast' && total > 0 && published >= total;
  };

  return (server: FastifyInstance) => {
    // The plain home page, as most visitors get it, is rendered once per published state.
    const homeCache = new PageCache(() => app.store.installments.publishedState().key, server.visitorCsrf);
    server.get('/', (req, reply) =>
      homeCache.send(req, reply, '/', (csrf) => homePage({ app, pages, links }, feeds.published(), csrf))!,
    );

    server.post(
      '/subscribe',
      {
        preHandler: (req, reply, done) => server.csrfProtection(req, reply, done),
        config: {
          rateLimit: {
            max: config.subscribe.rateLimitMax,
            timeWindow: config.subscribe.rateLimitWindowSeconds * 1000,
            errorResponseBuilder: (_req, ctx) => ({
              statusCode: 429,
              message: `Too many subscription attempts from your address. Please try again in ${ctx.after}.`,
            }),
          },
        },
      },
      (req, reply) => {
        const form = (req.body ?? {}) as Form;
        // Bots fill every field; people never see this one. Answer as if it worked.
        if (typeof form.website === 'string' && form.website !== '')
          return reply.redirect('/subscribe/check-inbox', 303);
        if (app.info.adult && form.adult !== 'yes') {
          return home(reply, 400, {
            formError:
              `This story is rated ${app.info.rating ?? 'for adults'}: ` +
              'please confirm you are an adult to subscribe.',
            email: typeof form.email === 'string' ? form.email : '',
          });
        }
        try {
          subscriptions.request(form.email, req.ip);
        } catch (err) {
          if (err instanceof InvalidEmailError)
            return home(reply, 400, {
              formError: `Please check your email address: ${err.message}.`,
              email: typeof form.email === 'string' ? form.email : '',
            });
          throw err;
        }
        return reply.redirect('/subscribe/check-inbox', 303);
      },
    );

    server.get('/subscribe/check-inbox', (_req, reply) =>
      sendHtml(
        reply,
        200,
        pages.message({
          pageTitle: 'Check your inbox',
          heading: 'Check your inbox',
          paragraphs: [
            complete()
              ? `${ON_ITS_WAY} Click the link in it to confirm your subscription.`
              : `${ON_ITS_WAY} Click the link in it to start receiving installments.`,
            'Nothing arrived after a few minutes? Look in your spam folder, or subscribe again a little later.',
          ],
        }),
      ),
    );

    /** A confirmation link that is not valid (400) or no longer usable (410). */
    const unusableConfirm = (reply: FastifyReply, reason: keyof typeof CONFIRM_FAILURES) =>
      sendHtml(
        reply,
        reason === 'unknown' ? 400 : 410,
        pages.message({
          pageTitle: 'Confirm',
          heading: 'This link cannot be used',
          paragraphs: [CONFIRM_FAILURES[reason]],
        }),
      );

    server.get('/confirm', (req, reply) => {
      const token = tokenOf(req);
      const checked = subscriptions.checkConfirm(token);
      if (!checked.ok) return unusableConfirm(reply, checked.reason);
      return sendHtml(
        reply,
        200,
        pages.message({
          pageTitle: 'Confirm your subscription',
          heading: 'Confirm your subscription',
          paragraphs: [`Confirm that ${checked.subscriber.email} should receive ${app.info.title} by email.`],
          action: { url: '/confirm', label: 'Confirm my subscription', fields: { token: String(token) } },
        }),
      );
    });

    server.post('/confirm', async (req, reply) => {
      const outcome = subscriptions.confirm(tokenOf(req), req.ip);
      if (!outcome.ok) return unusableConfirm(reply, outcome.reason);
      const next =
        config.mode === 'paced'
          ? 'Installment 1 is on its way to your inbox; the next ones follow on the schedule, ' +
            'and each email lets you ask for the next one sooner.'
          : complete()
            ? 'The story is complete: every installment is already out. ' +
              'Read the whole story on this site or download it as an EPUB; ' +
              'if the author adds to it, new installments will come by email.'
            : 'New installments will arrive in your inbox as they are published. ' +
              'Earlier ones can be read on this site.';
      const thanks = [`Thank you: ${outcome.subscriber.email} is now subscribed to ${app.info.title}.`, next];
      // While there is something left to deliver, the reader chooses when, right here.
      if (!complete())
        return calendarPage({ app, pages, links }, reply, outcome.subscriber, {
          heading: "You're subscribed",
          intro: thanks,
        });
      const storyLinks = [
        { url: links.wholeStory(), label: 'Read the whole story' },
        { url: links.epub(), label: 'Download the EPUB' },
      ];
      return sendHtml(
        reply,
        200,
        pages.message({
          pageTitle: 'Subscribed',
          heading: "You're subscribed",
          paragraphs: thanks,
          nextSteps: storyLinks,
        }),
      );
    });

    const badUnsubscribe = (reply: FastifyReply) =>
      sendHtml(
        reply,
        400,
        pages.message({
          pageTitle: 'Unsubscribe',
          heading: 'This link cannot be used',
          paragraphs: [
            'This unsubscribe link is not valid. ' +
              'Use the link from your most recent email, or reply to it and ask to be removed.',
          ],
        }),
      );

    server.get('/unsubscribe', (req, reply) => {
      const token = tokenOf(req);
      const sub = subscriptions.bySignedToken('unsubscribe', token);
      if (!sub) return badUnsubscribe(reply);
      if (sub.status === 'unsubscribed') {
        return sendHtml(
          reply,
          200,
          pages.message({
            pageTitle: 'Unsubscribe',
            heading: 'You are unsubscribed',
            paragraphs: [`${sub.email} no longer receives ${app.info.title}.`],
          }),
        );
      }
      return sendHtml(
        reply,
        200,
        pages.message({
          pageTitle: 'Unsubscribe',
          heading: 'Unsubscribe?',
          paragraphs: [`Stop sending ${app.info.title} to ${sub.email}?`],
          action: { url: '/unsubscribe', label: 'Unsubscribe', fields: { token: String(token) } },
        }),
      );
    });

    // Our own button and RFC 8058 one-click (mail clients POST "List-Unsubscribe=One-Click"
    // with no cookies): both are authorized by the signed token alone.
    server.post('/unsubscribe', (req, reply) => {
      const sub = subscriptions.unsubscribe(tokenOf(req));
      if (!sub) return badUnsubscribe(reply);
      return sendHtml(
        reply,
        200,
        pages.message({
          pageTitle: 'Unsubscribed',
          heading: 'You are unsubscribed',
          paragraphs: [
            `${sub.email} will not receive any more installments of ${app.info.title}.`,
            'Changed your mind? You can subscribe again from the home page at any time.',
          ],
        }),
      );
    });
  };
}
