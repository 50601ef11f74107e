// `feuilleton serve`: web front, feeds and scheduler in one process. SIGTERM/SIGINT stop
// taking requests, let an in-flight send checkpoint (it pauses; --resume continues), and
// close the database cleanly.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { App } from '../app.ts';
import { createRuntime, type Runtime } from '../runtime.ts';
import { Scheduler } from '../schedule.ts';
import { startWarnings } from './check.ts';
import { Feedback } from '../subscribers/feedback.ts';
import { Housekeeping } from '../subscribers/housekeeping.ts';
import { archiveRoutes } from '../web/archive-routes.ts';
import { feedRoutes } from '../web/feed-routes.ts';
import { healthRoutes } from '../web/health-routes.ts';
import { nextRoutes } from '../web/next-routes.ts';
import { outboxRoutes } from '../web/outbox-routes.ts';
import { createServer } from '../web/server.ts';
import type { FetchText } from '../web/sns.ts';
import { subscribeRoutes } from '../web/subscribe-routes.ts';
import { webhookRoutes } from '../web/webhook-routes.ts';

export interface Serving {
  server: FastifyInstance;
  runtime: Runtime;
  scheduler: Scheduler;
  url: string;
  stop(): Promise<void>;
}

export async function startServing(app: App, log: Logger, opts: { port?: number; host?: string; clock?: () => Date; fetchText?: FetchText } = {}): Promise<Serving> {
  const runtime = createRuntime(app, log);
  for (const w of startWarnings(app.config)) log.warn(w);
  const { pages, subscriptions, transport } = runtime;
  const server = await createServer({
    config: app.config,
    pages,
    logger: log,
    routes: [
      healthRoutes(app.store, { clock: opts.clock }),
      subscribeRoutes({ app, pages, subscriptions }),
      nextRoutes({ app, pages, subscriptions, send: runtime.send }),
      feedRoutes({ app, pages }),
      archiveRoutes({ app, pages, links: runtime.links }),
      ...(transport.kind === 'outbox' ? [outboxRoutes({ dir: app.config.paths.outbox, pages, access: app.config.server.outboxPage })] : []),
      webhookRoutes({ webhooks: app.config.webhooks, feedback: new Feedback({ store: app.store.feedback, log }), fetchText: opts.fetchText }),
    ],
  });
  const host = opts.host ?? app.config.server.host;
  const port = opts.port ?? app.config.server.port;
  await server.listen({ host, port });
  const addr = server.server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}/`;
  runtime.notices.start();
  const housekeeping = new Housekeeping({ store: app.store, pendingDays: app.config.subscribe.pendingDays, log, clock: opts.clock });
  housekeeping.start();
  const scheduler = new Scheduler({ send: runtime.send, log, clock: opts.clock });
  // Not awaited: a catch-up send may take a while and the site should answer meanwhile.
  scheduler.start().catch((err: unknown) => log.error({ err }, 'scheduler failed to start'));
  let stopping: Promise<void> | undefined;
  return {
    server,
    runtime,
    scheduler,
    url,
    stop: () =>
      (stopping ??= (async () => {
        housekeeping.stop();
        // Bounded, so a service manager's stop timeout is never the one that ends us: mail
        // still on the wire at the deadline stays in the ledger and goes at the next start.
        const graceMs = app.config.delivery.shutdownGraceSeconds * 1000;
        const settled = Promise.all([scheduler.stop(), server.close(), runtime.notices.stop(graceMs), subscriptions.settled()]).then(() => true);
        let timer: NodeJS.Timeout | undefined;
        const inTime = await Promise.race([settled, new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
        clearTimeout(timer);
        if (!inTime) log.warn(`shutdown: mail still in flight after ${app.config.delivery.shutdownGraceSeconds} s (delivery.shutdownGraceSeconds); it stays queued and goes at the next start`);
        runtime.close();
      })()),
  };
}
