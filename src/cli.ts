#!/usr/bin/env -S node --max-semi-space-size=2
// The flag: V8 grows the young generation to 32 MB in any long send (a steady stream of
// messages in flight survives its collections), a fifth of the process; capped at 4 MB the
// peak of a send to 100,000 readers drops from about 155 to 135 MB with no CPU cost measured
// (bench/send.ts). `npx feuilleton …` and the installed command run through this line, `npm
// start` and `node dist/cli.js` do not. `env -S` needs GNU coreutils 8.30+, BSD or macOS
// (not BusyBox): README says what to run there.
// Command definitions only. Nothing but commander loads at start, so `--help` answers about
// as fast as node itself; each action imports the modules it needs (the database driver,
// zod, the web framework and MJML weigh hundreds of milliseconds together).
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Command, InvalidArgumentError } from 'commander';
import type { App } from './app.ts';
import type { Config } from './config.ts';
import type { InitOptions } from './commands/operate.ts';
import type { SendCliOptions } from './commands/send.ts';
import { UserError } from './errors.ts';

const COLLECT_EVERY_MS = 1_000;

/** Runs V8's full garbage collection every `ms` until the timer is cleared. */
function fullCollections(ms: number): NodeJS.Timeout {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return setInterval(gc, ms).unref();
}

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command()
  .name('feuilleton')
  .description('Publish a serialized story: installments by email, feeds and web pages.')
  .version(version)
  .option('-c, --config <file>', 'config file (default: ./feuilleton.yaml, or $FEUILLETON_CONFIG)')
  .showHelpAfterError();

const out = (line: string): void => {
  process.stdout.write(line + '\n');
};
const config = async (forCheck = false): Promise<Config> =>
  (await import('./config.ts')).loadConfig({
    configPath: program.opts<{ config?: string }>().config,
    requireFile: true,
    forCheck,
  });

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of 1 or more`);
  return n;
};

const port = (v: string) => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535)
    throw new InvalidArgumentError('--port must be a whole number from 0 to 65535 (0: any free port)');
  return n;
};

/** Runs `fn` with an open app and always closes the database, even when `fn` throws. */
async function withApp<T>(fn: (app: App) => T | Promise<T>): Promise<T> {
  const cfg = await config();
  const app = (await import('./app.ts')).openApp(cfg);
  for (const w of app.warnings) process.stderr.write(`warning: ${w}\n`);
  try {
    return await fn(app);
  } finally {
    app.store.close();
  }
}

program
  .command('installments')
  .description('show how the story is split into installments, and which are published')
  .option('--json', 'print JSON instead of a table')
  .action((opts: { json?: boolean }) =>
    withApp(async (app) =>
      out(await (await import('./commands/installments.ts')).installmentsReport(app, !!opts.json)),
    ),
  );

program
  .command('serve')
  .description('run the web front (subscribe, archive, feeds) and the delivery schedule')
  .option('-p, --port <port>', 'port to listen on (default: server.port, or $FEUILLETON_PORT; 0: any free port)', port)
  .option('--host <host>', 'address to listen on (default: server.host)')
  .action(async (opts: { port?: number; host?: string }) => {
    const cfg = await config();
    const [{ openApp }, { createLogger }, { listenConfig, startServing }] = await Promise.all([
      import('./app.ts'),
      import('./log.ts'),
      import('./commands/serve.ts'),
    ]);
    // The address is settled before anything is built, so links follow the port actually used.
    const app = openApp(await listenConfig(cfg, opts));
    const log = createLogger();
    for (const w of app.warnings) log.warn(w);
    const serving = await startServing(app, log);
    const outbox = app.config.server.outboxPage === 'off' ? app.config.paths.outbox : `${serving.url}outbox`;
    const noMailServer = serving.runtime.transport.kind === 'outbox' ? ` (no mail server: emails go to ${outbox})` : '';
    log.info(`serving "${app.info.title}" at ${serving.url}${noMailServer}`);
    const shutdown = (signal: string) => {
      log.info(`${signal} received: shutting down`);
      serving.stop().then(
        () => {
          log.info('stopped cleanly: database closed');
          process.exit(0);
        },
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });

program
  .command('send')
  .description('send the next installment now (broadcast), or each reader their next one (paced)')
  .option('--dry-run', 'list who would get what; send and record nothing')
  .option('--to <address>', 'test send to one address; not recorded as a delivery')
  .option(
    '--installment <n>',
    'which installment (broadcast; default: the next unpublished)',
    positiveInt('--installment'),
  )
  .option('--resume', 'continue a run that paused (mail server outage, --limit) or was interrupted')
  .option(
    '--retry-failed [run]',
    "once you fixed what made deliveries fail, queue a run's failed ones again and send them " +
      '(default: the latest run with failures)',
    positiveInt('--retry-failed'),
  )
  .option('--limit <n>', 'send at most this many messages, then pause the run', positiveInt('--limit'))
  .option('--force', 'broadcast: start a run even within schedule.minIntervalHours of the last one')
  .action((opts: SendCliOptions) =>
    withApp(async (app) => {
      // A send is a long, steady stream of short-lived messages in a process of its own, and
      // V8 lets a young process's old generation grow past 200 MB at 100,000 readers before
      // its first full collection. A full collection every second holds it near 160 MB
      // (bench/send.ts) for about 17 ms a second, where V8's size-optimising flags, which
      // reach 140 MB, cost a quarter of the send rate. (The young generation is capped by
      // the flag in the first line.)
      const collect = fullCollections(COLLECT_EVERY_MS);
      const [{ createLogger }, { createRuntime }, { startWarnings }, { sendCommand }] = await Promise.all([
        import('./log.ts'),
        import('./runtime.ts'),
        import('./commands/check.ts'),
        import('./commands/send.ts'),
      ]);
      const log = createLogger({ pretty: true });
      const runtime = createRuntime(app, log);
      for (const w of startWarnings(app.config)) process.stderr.write(`warning: ${w}\n`);
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        process.exitCode = await sendCommand(runtime.send, opts, out, abort.signal);
      } finally {
        clearInterval(collect);
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        runtime.transport.close();
      }
    }),
  );

program
  .command('preview')
  .description('write an installment as the email a reader gets: HTML and text files, optionally PNG screenshots')
  .argument('[n]', 'installment number (default: the next unpublished one)', positiveInt('N'))
  .option('--png', 'also screenshot the email at desktop and phone widths (needs Chromium)')
  .option('--out <dir>', 'folder for the files (default: DATA/preview)')
  .action((n: number | undefined, opts: { png?: boolean; out?: string }) =>
    withApp(async (app) => {
      const { preview } = await import('./commands/preview.ts');
      for (const file of await preview(app, n, { png: !!opts.png, outDir: opts.out })) out(file);
    }),
  );

program
  .command('export <dir>')
  .description('write the public site (feeds, home page, published installments) to DIR as static files')
  .action((dir: string) =>
    withApp(async (app) => {
      const { exportStatic } = await import('./publish/export.ts');
      const files = await exportStatic(app, dir);
      out(
        `wrote ${files.length} files to ${(await import('node:path')).resolve(dir)} ` +
          `(links point at ${app.config.baseUrl}: host the copy there)`,
      );
    }),
  );

program
  .command('status')
  .description('story progress, subscribers, last run, next scheduled run')
  .option('--json', 'print JSON')
  .action((opts: { json?: boolean }) =>
    withApp(async (app) => {
      const { statusData, statusReport } = await import('./commands/status.ts');
      out(opts.json ? JSON.stringify(statusData(app), null, 2) : statusReport(app));
    }),
  );

program
  .command('check')
  .description('name every setting unsafe for going live, with its fix (exit 1 on errors in production)')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const { check, checkFailed, checkReport, storyFindings } = await import('./commands/check.ts');
    const cfg = await config(true);
    const result = check(cfg, await storyFindings(cfg));
    out(opts.json ? JSON.stringify(result, null, 2) : checkReport(result));
    if (checkFailed(result)) process.exitCode = 1;
  });

const subscribers = program.command('subscribers').description('manage the subscriber list');
const admin = () => import('./subscribers/admin.ts');

subscribers
  .command('list')
  .description('list subscribers')
  .option('--status <status>', 'only pending, active, unsubscribed or bounced')
  .option('--json', 'print JSON')
  .action((opts: { status?: string; json?: boolean }) =>
    withApp(async (app) => {
      const { exportSubscribers, parseStatus } = await admin();
      const status = parseStatus(opts.status);
      if (opts.json) exportSubscribers(app.store, 'json', (c) => process.stdout.write(c), status);
      else out((await import('./commands/subscribers.ts')).subscribersTable(app.store, status));
    }),
  );

subscribers
  .command('add <email>')
  .description('add an address as active (you vouch for their consent)')
  .action((email: string) =>
    withApp(async (app) => {
      const r = (await admin()).addSubscriber(app.store, email);
      out(
        r.created ? `added ${r.subscriber.email} (active)` : `${r.subscriber.email} was already subscribed; now active`,
      );
    }),
  );

subscribers
  .command('remove <email>')
  .description('unsubscribe an address (its history is kept; see "forget")')
  .action((email: string) =>
    withApp(async (app) => out(`${(await admin()).removeSubscriber(app.store, email).email} unsubscribed`)),
  );

subscribers
  .command('import <file>')
  .description(
    'import active subscribers from a CSV file with an "email" column, ' +
      'or an export of Mailchimp, Substack, Buttondown, Ghost or listmonk (all or nothing)',
  )
  .option('--skip-invalid', 'import the valid rows even when some rows are invalid')
  .action((file: string, opts: { skipInvalid?: boolean }) =>
    withApp(async (app) => {
      const r = (await admin()).importCsv(app.store, file, opts);
      for (const e of r.errors) process.stderr.write(`${e}\n`);
      if (r.ignoredColumns.length) out(`ignored columns: ${r.ignoredColumns.join(', ')}`);
      if (!r.imported) {
        process.stderr.write(
          `feuilleton: ${r.errors.length} invalid row(s) in ${file}; ` +
            'nothing was imported (fix them, or use --skip-invalid)\n',
        );
        process.exitCode = 1;
        return;
      }
      const notSubscribed = r.notSubscribed ? `, ${r.notSubscribed} marked there as not subscribed (skipped)` : '';
      const invalid = r.errors.length ? `, ${r.errors.length} invalid skipped` : '';
      out(
        `${file}: ${r.rows} row(s): ${r.added} added, ${r.alreadyPresent} already present, ` +
          `${r.duplicatesInFile} duplicate(s) in the file${notSubscribed}${invalid}`,
      );
    }),
  );

subscribers
  .command('export')
  .description('write the subscriber list to standard output')
  .option('--format <format>', 'csv or json', 'csv')
  .option('--status <status>', 'only pending, active, unsubscribed or bounced')
  .action((opts: { format: string; status?: string }) =>
    withApp(async (app) => {
      const { exportSubscribers, parseStatus } = await admin();
      if (opts.format !== 'csv' && opts.format !== 'json')
        throw new UserError(`--format must be csv or json, not "${opts.format}"`);
      exportSubscribers(app.store, opts.format, (c) => process.stdout.write(c), parseStatus(opts.status));
    }),
  );

subscribers
  .command('show <email>')
  .description('print everything held about one subscriber (access request)')
  .action((email: string) =>
    withApp(async (app) => out(JSON.stringify((await admin()).showSubscriber(app.store, email, app.config), null, 2))),
  );

subscribers
  .command('forget <email>')
  .description('delete a subscriber and their delivery history (erasure request)')
  .action((email: string) =>
    withApp(async (app) => {
      const r = (await admin()).forgetSubscriber(app.store, email);
      out(`forgot ${r.email}: subscriber record and ${r.deliveries} delivery record(s) deleted`);
    }),
  );

program
  .command('backup <file>')
  .description('copy the database to FILE while serving (online backup)')
  .action((file: string) =>
    withApp(async (app) => {
      const r = await (await import('./commands/operate.ts')).backup(app.store, file);
      out(`backup written to ${r.file} (${r.pages} pages)`);
    }),
  );

program
  .command('init <dir>')
  .description(
    'create a new story project in DIR: commented config, your story (or the sample), templates, package.json',
  )
  .option('--story <file>', 'your story (.txt or .md) to copy in (default: the sample story, to replace)')
  .option('--title <title>', "the story's title (default: from the story file's header, or its name)")
  .option('--author <name>', "the author's name (default: from the story file's header)")
  .option(
    '--from <address>',
    'sender of every email, such as "My Serial <serial@example.org>" (default: a local address that `check` flags)',
  )
  .option(
    '--postal-address <text>',
    'your postal address for the foot of every email (default: empty, which `check` flags)',
  )
  .action(async (dir: string, opts: InitOptions) => {
    const { init, nextSteps } = await import('./commands/operate.ts');
    const project = init(dir, opts);
    out(`created:\n${project.files.map((f) => `  ${f}`).join('\n')}\n\n${nextSteps(project)}`);
  });

program.parseAsync(process.argv).catch(async (err: unknown) => {
  const { failureLine } = await import('./failures.ts');
  // Asked for only to name a damaged database; a config that does not load names none.
  const db = await config().then(
    (c) => c.paths.db,
    () => undefined,
  );
  for (const line of failureLine(err, () => db).split('\n')) process.stderr.write(`feuilleton: ${line}\n`);
  if (['debug', 'trace'].includes(process.env.LOG_LEVEL ?? '') && err instanceof Error && err.stack)
    process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
