// A reader's calendar, from the signed link in every email (no account, no password): the
// page on GET (mail scanners may prefetch it: it changes nothing), changes on POST with the
// CSRF token and the signed token, rate limited per reader. The time zone the browser
// reports is preselected by a small script of ours (the CSP forbids inline ones); without
// it, the form shows the config's zone and the reader picks theirs from the list.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { App } from '../app.ts';
import { WEEKDAY_NAMES, type WeekdayName } from '../calendar.ts';
import { Links } from '../links.ts';
import type { ReaderCadence, Subscriber } from '../store/subscribers.ts';
import { calendarView, nextDue, ReaderCalendars, type CalendarForm } from '../subscribers/calendars.ts';
import type { Pages } from '../pages/pages.ts';
import { sendHtml, tokenOf } from './reply.ts';
import { CONTENT_SECURITY_POLICY } from './server.ts';

const SCRIPT_PATH = '/timezone.js';

/** Preselects the browser's own zone when the reader has not chosen one yet. */
const TIMEZONE_SCRIPT = `// feuilleton: preselect the time zone this browser reports.
const select = document.querySelector('select[data-guess-zone]');
const zone = select && Intl.DateTimeFormat().resolvedOptions().timeZone;
if (zone) {
  if (![...select.options].some((o) => o.value === zone)) select.add(new Option(zone, zone));
  select.value = zone;
}
`;

const PAGE_CSP = `${CONTENT_SECURITY_POLICY}; script-src 'self'`;

const CADENCE_LABELS: Record<ReaderCadence, string> = {
  schedule: 'With the story’s own schedule',
  daily: 'Every day',
  weekdays: 'Weekdays (Monday to Friday)',
  days: 'On the days I choose',
  weekly: 'Once a week',
};

const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const WEEKDAYS = [...WEEKDAY_NAMES.slice(1), WEEKDAY_NAMES[0]].map((value) => ({ value, label: capital(value) }));

/** Every zone this Node knows, plus UTC (Intl lists only geographic ones). */
const ZONES = ['UTC', ...Intl.supportedValuesOf('timeZone')];

export interface CalendarPageOptions {
  status?: number;
  heading?: string;
  intro?: string[];
  saved?: string;
  errors?: string[];
}

export interface PreferencesDeps {
  app: App;
  pages: Pages;
  links: Links;
  clock?: () => Date;
}

/** The calendar page (also the confirmation page's second half): its own CSP lets our zone script run. */
export function calendarPage(
  deps: PreferencesDeps,
  reply: FastifyReply,
  sub: Subscriber,
  opts: CalendarPageOptions = {},
): FastifyReply {
  const { app, pages, links } = deps;
  const { config } = app;
  const now = deps.clock?.() ?? new Date();
  const view = calendarView(sub, config, now);
  const zoneDate = (opts2: Intl.DateTimeFormatOptions) =>
    new Intl.DateTimeFormat(app.info.language, { ...opts2, timeZone: view.timezone });
  // A pause ends on a calendar date, the same in every zone.
  const pauseEnd = view.pausedUntil
    ? new Intl.DateTimeFormat(app.info.language, { dateStyle: 'full', timeZone: 'UTC' }).format(
        new Date(`${view.pausedUntil}T00:00:00Z`),
      )
    : '';
  const paced = config.mode === 'paced';
  const total = app.store.installments.count().total;
  // Just confirmed on the default calendar: armed at the next run, due at its next slot.
  const nextAt = sub.nextDueAt ?? nextDue(sub.choices, config, now);
  const summary = view.pausedUntil
    ? `Paused: nothing is sent until ${pauseEnd}.`
    : nextAt
      ? `Your next installment: ${zoneDate({ dateStyle: 'full', timeStyle: 'short' }).format(new Date(nextAt))} ` +
        `(${view.timezone}).`
      : paced
        ? 'You get one installment at each of the story’s scheduled runs.'
        : 'You get each new installment when it is published.';
  const cadences = (Object.keys(CADENCE_LABELS) as ReaderCadence[])
    .filter((c) => paced || c !== 'schedule')
    .map((value) => ({ value, label: CADENCE_LABELS[value] }));
  const tomorrow = new Date(`${view.today}T12:00:00Z`);
  tomorrow.setUTCDate(tomorrow.getUTCDate() + 1);
  const html = pages.render('preferences', {
    pageTitle: 'Your reading calendar',
    noindex: true,
    script: SCRIPT_PATH,
    heading: opts.heading ?? 'Your reading calendar',
    intro: opts.intro ?? [`When ${app.info.title} comes to ${sub.email}.`],
    saved: opts.saved,
    errors: opts.errors ?? [],
    summary,
    mode: config.mode,
    view,
    cadences,
    weekdays: WEEKDAYS as Array<{ value: WeekdayName; label: string }>,
    zones: ZONES.includes(view.timezone) ? ZONES : [view.timezone, ...ZONES],
    guessZone: sub.choices.timezone === null,
    token: links.sign('preferences', sub),
    csrf: reply.generateCsrf(),
    tomorrow: tomorrow.toISOString().slice(0, 10),
    pausedUntilText: pauseEnd,
    catchUp: paced && sub.position < total ? { token: links.sign('next', sub) } : null,
  });
  // The signed token is in the page: no cache may keep it.
  return sendHtml(
    reply.header('content-security-policy', PAGE_CSP).header('cache-control', 'no-store'),
    opts.status ?? 200,
    html,
  );
}

export function preferencesRoutes(deps: PreferencesDeps) {
  const { app, pages, links } = deps;
  const calendars = new ReaderCalendars({ subscribers: app.store.subscribers, config: app.config, clock: deps.clock });

  const reader = (token: unknown): Subscriber | undefined => {
    const id = Links.idOf(token);
    const sub = id === null ? undefined : app.store.subscribers.get(id);
    return sub && sub.status === 'active' && links.verify('preferences', token as string, sub) ? sub : undefined;
  };
  const badLink = (reply: FastifyReply) =>
    sendHtml(
      reply,
      400,
      pages.message({
        pageTitle: 'Reading calendar',
        heading: 'This link cannot be used',
        paragraphs: ['This link is not valid for an active subscription. Use the link in your most recent email.'],
      }),
    );

  return (server: FastifyInstance) => {
    server.get(SCRIPT_PATH, (_req, reply) =>
      reply
        .type('text/javascript; charset=utf-8')
        .header('cache-control', 'public, max-age=86400')
        .send(TIMEZONE_SCRIPT),
    );

    server.get('/preferences', (req, reply) => {
      const sub = reader(tokenOf(req));
      return sub ? calendarPage(deps, reply, sub) : badLink(reply);
    });

    server.post(
      '/preferences',
      {
        preHandler: (req, reply, done) => server.csrfProtection(req, reply, done),
        config: {
          rateLimit: {
            max: 30,
            timeWindow: 600_000,
            hook: 'preHandler',
            keyGenerator: (req) => `preferences:${Links.idOf(tokenOf(req)) ?? req.ip}`,
            errorResponseBuilder: (_req, ctx) => ({
              statusCode: 429,
              message: `You have changed your calendar many times just now; try again in ${ctx.after}.`,
            }),
          },
        },
      },
      (req, reply) => {
        const sub = reader(tokenOf(req));
        if (!sub) return badLink(reply);
        const form = (req.body ?? {}) as CalendarForm;
        const again = () => app.store.subscribers.get(sub.id)!;
        if (form.action === 'pause') {
          const r = calendars.pause(sub, form.until);
          return r.ok
            ? calendarPage(deps, reply, again(), { saved: 'Paused.' })
            : calendarPage(deps, reply, sub, { status: 400, errors: [r.error] });
        }
        if (form.action === 'resume') {
          calendars.resume(sub);
          return calendarPage(deps, reply, again(), { saved: 'Resumed.' });
        }
        const r = calendars.update(sub, form);
        return r.ok
          ? calendarPage(deps, reply, again(), { saved: 'Saved.' })
          : calendarPage(deps, reply, sub, { status: 400, errors: r.errors });
      },
    );
  };
}
