// `feuilleton serve`: web front, feeds and scheduler in one process. SIGTERM/SIGINT stop
// taking requests, let an in-flight send checkpoint (it pauses; --resume continues), and
// close the database cleanly.
import { createServer as createNetServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { App } from '../app.ts';
import { isLoopbackHost, serverUrl, type Config } from '../config.ts';
import { UserError } from '../errors.ts';
import { createRuntime, type Runtime } from '../runtime.ts';
import { Scheduler } from '../schedule.ts';
import { startWarnings } from './check.ts';
import { Feedback } from '../subscribers/feedback.ts';
import { Housekeeping } from '../subscribers/housekeeping.ts';
import { Pages } from '../pages/pages.ts';
import { FeedCache } from '../publish/feeds.ts';
import { archiveRoutes } from '../web/archive-routes.ts';
import { feedRoutes } from '../web/feed-routes.ts';
import { healthRoutes } from '../web/health-routes.ts';
import { nextRoutes } from '../web/next-routes.ts';
import { outboxRoutes } from '../web/outbox-routes.ts';
import { preferencesRoutes } from '../web/preferences-routes.ts';
import { createServer } from '../web/server.ts';
import type { FetchText } from '../web/sns.ts';
import { subscribeRoutes } from '../web/subscribe-routes.ts';
import { webhookRoutes } from '../web/webhook-routes.ts';

export interface Serving {
  server: FastifyInstance;
  runtime: Runtime;
  /** The published installments and their feeds, built once per publication for every route. */
  feeds: FeedCache;
  scheduler: Scheduler;
  url: string;
  stop(): Promise<void>;
}

/** A port free right now. Another program could take it before we bind it; that then fails as "in use". */
async function freePort(host: string): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(0, host, resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * The config as `serve` will listen: --host and --port applied and, when baseUrl is unset,
 * baseUrl rebuilt on that port (for port 0, a free one picked now), so every link built
 * from here on points at this server.
 */
export async function listenConfig(config: Config, opts: { port?: number; host?: string }): Promise<Config> {
  const host = opts.host ?? config.server.host;
  const wanted = opts.port ?? config.server.port;
  const port = wanted === 0 && config.baseUrlFollowsServer ? await freePort(host).catch(() => 0) : wanted;
  return {
    ...config,
    server: { ...config.server, host, port },
    baseUrl: config.baseUrlFollowsServer ? serverUrl(host, port) : config.baseUrl,
  };
}

/** Why the server could not listen, as the operator can fix it; undefined for anything else. */
function listenProblem(err: unknown, host: string, port: number, file: string | undefined): string | undefined {
  const choose = `choose another with --port N, FEUILLETON_PORT=N or server.port${file ? ` in ${file}` : ''}`;
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return (
        `port ${port} on ${host} is already in use (another feuilleton serve, or another program): ` +
        `stop that program, or ${choose}`
      );
    case 'EACCES':
      return (
        `port ${port} on ${host}: permission denied (ports below 1024 need root): ` +
        `${choose}, and let a reverse proxy take 80 and 443`
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return (
        `cannot listen on ${host}: not an address of this machine; ` +
        'set server.host (or --host) to 127.0.0.1, 0.0.0.0 or one of its own addresses'
      );
    default:
      return undefined;
  }
}

/** A set baseUrl on this machine but another port: every link would lead to some other program, or nowhere. */
function portMismatch(config: Config, host: string, port: number): string | undefined {
  if (config.baseUrlFollowsServer) return undefined;
  const base = new URL(config.baseUrl);
  const basePort = Number(base.port || (base.protocol === 'https:' ? 443 : 80));
  const local = isLoopbackHost(host) || ['0.0.0.0', '::'].includes(host);
  if (!isLoopbackHost(base.hostname) || !local || basePort === port) return undefined;
  return (
    `baseUrl ${config.baseUrl} is on port ${basePort} but the server listens on ${port}: ` +
    'links in emails and feeds will not reach it; ' +
    'remove baseUrl to have links follow the server, or make the two ports agree'
  );
}

export async function startServing(
  app: App,
  log: Logger,
  opts: { port?: number; host?: string; clock?: () => Date; fetchText?: FetchText } = {},
): Promise<Serving> {
  const runtime = createRuntime(app, log);
  for (const w of startWarnings(app.config)) log.warn(w);
  const { subscriptions, transport } = runtime;
  const feeds = new FeedCache(app);
  // Only the server renders pages: other commands never load the page templates.
  const pages = new Pages(app.config.paths.templates, {
    info: app.info,
    links: runtime.links,
    outboxEnabled: transport.kind === 'outbox' && app.config.server.outboxPage !== 'off',
  });
  const server = await createServer({
    config: app.config,
    pages,
    logger: log,
    routes: [
      healthRoutes(app.store, { clock: opts.clock }),
      subscribeRoutes({ app, pages, subscriptions, feeds }),
      nextRoutes({ app, pages, subscriptions, send: runtime.send, links: runtime.links }),
      preferencesRoutes({ app, pages, links: runtime.links, clock: opts.clock }),
      feedRoutes({ app, pages, feeds }),
      archiveRoutes({ app, pages, links: runtime.links, feeds }),
      ...(transport.kind === 'outbox'
        ? [outboxRoutes({ dir: app.config.paths.outbox, pages, access: app.config.server.outboxPage })]
        : []),
      webhookRoutes({
        webhooks: app.config.webhooks,
        feedback: new Feedback({ store: app.store.feedback, log }),
        fetchText: opts.fetchText,
      }),
    ],
  });
  const host = opts.host ?? app.config.server.host;
  const port = opts.port ?? app.config.server.port;
  try {
    await server.listen({ host, port });
  } catch (err) {
    await server.close();
    runtime.close();
    const problem = listenProblem(err, host, port, app.config.file);
    throw problem ? new UserError(problem) : err;
  }
  const addr = server.server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `${serverUrl(host, boundPort)}/`;
  const mismatch = portMismatch(app.config, host, boundPort);
  if (mismatch) log.warn(mismatch);
  runtime.notices.start();
  const housekeeping = new Housekeeping({
    store: app.store,
    pendingDays: app.config.subscribe.pendingDays,
    log,
    clock: opts.clock,
  });
  housekeeping.start();
  const scheduler = new Scheduler({ send: runtime.send, meta: app.store.meta, log, clock: opts.clock });
  // Not awaited: a catch-up send may take a while and the site should answer meanwhile.
  scheduler.start().catch((err: unknown) => log.error({ err }, 'scheduler failed to start'));
  let stopping: Promise<void> | undefined;
  return {
    server,
    runtime,
    feeds,
    scheduler,
    url,
    stop: () =>
      (stopping ??= (async () => {
        housekeeping.stop();
        // Bounded, so a service manager's stop timeout is never the one that ends us: mail
        // still on the wire at the deadline stays in the ledger and goes at the next start.
        const graceMs = app.config.delivery.shutdownGraceSeconds * 1000;
        const settled = Promise.all([
          scheduler.stop(),
          server.close(),
          runtime.notices.stop(graceMs),
          subscriptions.settled(),
        ]).then(() => true);
        let timer: NodeJS.Timeout | undefined;
        const inTime = await Promise.race([
          settled,
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
        ]);
        clearTimeout(timer);
        if (!inTime)
          log.warn(
            `shutdown: mail still in flight after ${app.config.delivery.shutdownGraceSeconds} s ` +
              '(delivery.shutdownGraceSeconds); it stays queued and goes at the next start',
          );
        runtime.close();
      })()),
  };
}
