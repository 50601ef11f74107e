// Wires the long-lived parts around an open App: links, transport, renderer, subscription
// service and the send context. Commands and the server share this one assembly.
import cron from 'node-cron';
import type { Logger } from 'pino';
import type { App } from './app.ts';
import { MessageBuffers } from './deliver/compose.ts';
import { ListMail, MessageIds, senderDomain } from './deliver/headers.ts';
import { InstallmentMail } from './deliver/installment-mail.ts';
import { NoticeMail } from './deliver/notice-mail.ts';
import { NoticeSender, type NoticeSenderDeps } from './deliver/notices.ts';
import { sendConcurrency, sendNext, type SendContext } from './deliver/send.ts';
import { createTransport, mailOptions, type MailTransport, type OutgoingMail } from './deliver/transport.ts';
import { linksFor, type Links } from './links.ts';
import { emailRendererFor, type EmailRenderer } from './render/email.ts';
import { releaseMjml } from './render/mjml.ts';
import { Subscriptions } from './subscribers/service.ts';

export interface Runtime {
  app: App;
  links: Links;
  transport: MailTransport;
  renderer: EmailRenderer;
  ids: MessageIds;
  /** Confirmation, welcome and "The End" emails: queued in the db, sent by this. */
  notices: NoticeSender;
  /** What `notices` was built from, for a sender wired the same with a part replaced. */
  noticeDeps: NoticeSenderDeps;
  subscriptions: Subscriptions;
  send: SendContext;
  close(): void;
}

// A task never started, asked only for its times. getNextRun() answers null for such a
// task; getNextRuns does not.
const scheduleProbe = (config: App['config']) =>
  cron.createTask(config.schedule.cron, () => undefined, { timezone: config.schedule.timezone });

/** When the schedule will next send, without starting it (for "next installment" lines and status). */
export function nextScheduledRun(config: App['config']): () => Date | null {
  if (!config.schedule.enabled) return () => null;
  const probe = scheduleProbe(config);
  return () => probe.getNextRuns(1)[0] ?? null;
}

/** The schedule's next `count` run times; none when it is off. */
export function upcomingRuns(config: App['config'], count: number): Date[] {
  return config.schedule.enabled ? scheduleProbe(config).getNextRuns(count) : [];
}

export function createRuntime(app: App, log: Logger): Runtime {
  const links = linksFor(app);
  const transport = createTransport(app.config);
  const renderer = emailRendererFor(app, links);
  const lists = new ListMail(app.config, app.info.title);
  const ids = new MessageIds({
    instance: app.instanceId,
    storyTitle: app.info.title,
    domain: senderDomain(app.config),
  });
  const options = (mail: OutgoingMail) => mailOptions(app.config, mail);
  const noticeDeps: NoticeSenderDeps = {
    notices: app.store.notices,
    subscribers: app.store.subscribers,
    renderer,
    transport,
    ids,
    address: (filled, to, unsubscribeUrl, id, kind) => lists.address(filled, to, unsubscribeUrl, id, kind),
    noticeMail: new NoticeMail({
      address: (filled, to, unsubscribeUrl, id, kind) => lists.address(filled, to, unsubscribeUrl, id, kind),
      options,
    }),
    config: app.config,
    log,
  };
  const notices = new NoticeSender(noticeDeps);
  const installmentMail = new InstallmentMail({
    renderer,
    buffers: new MessageBuffers(sendConcurrency(app.config)),
    address: (filled, to, unsubscribeUrl, id) => lists.address(filled, to, unsubscribeUrl, id, 'installment'),
    options,
  });
  const send: SendContext = {
    store: app.store,
    config: app.config,
    transport,
    renderer,
    ids,
    lists,
    installmentMail,
    notices,
    nextRunAt: nextScheduledRun(app.config),
    log: ({ level, message, ...fields }) => log[level](fields, message),
    releaseCompiler: releaseMjml,
  };
  const subscriptions = new Subscriptions({
    store: app.store,
    config: app.config,
    links,
    notices,
    log,
    // Paced readers start at installment 1 the moment they confirm.
    onActivated:
      app.config.mode === 'paced'
        ? async (sub) => {
            const r = await sendNext(send, sub.id);
            log.info({ subscriber: sub.id, ...r }, 'first installment for a new paced reader');
          }
        : undefined,
  });
  return {
    app,
    links,
    transport,
    renderer,
    ids,
    notices,
    noticeDeps,
    subscriptions,
    send,
    close() {
      transport.close();
      app.store.close();
    },
  };
}
