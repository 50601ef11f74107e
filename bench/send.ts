// What `feuilleton send` costs on top of the SMTP library it drives, and what memory a
// large send holds. In one run, against one local SMTP sink (smtp-server on 127.0.0.1):
//   1. messages/second of sendRun to N subscribers (ledger, streaming, per-reader fill);
//   2. messages/second of a bare nodemailer pool, same pool size and as many messages in
//      flight, sending the same rendered installment N times; and their ratio (target ≥ 0.9);
//   3. peak RSS of `feuilleton send` to M subscribers, the built CLI as operators run it, in
//      a child process (target < 200 MB), next to that of a send to a small list, to show
//      memory stays flat as the list grows.
//   node --import tsx bench/send.ts [N=20000] [M=100000]
// The sink runs in a process of its own, so that sender and server each have a core.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import type { App } from '../src/app.ts';
import { PACKAGE_ROOT } from '../src/config.ts';
import { listMail } from '../src/deliver/headers.ts';
import { sendConcurrency, sendRun } from '../src/deliver/send.ts';
import { createLogger } from '../src/log.ts';
import { EmailRenderer } from '../src/render/email.ts';
import { createRuntime } from '../src/runtime.ts';
import { makeProject, type Project } from '../test/helpers/project.ts';
import { spawnCli } from '../test/helpers/cli.ts';
import { SmtpSink } from '../test/helpers/smtp-sink.ts';

const SELF = fileURLToPath(import.meta.url);
const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli.js');
const V8_OPTIONS = (process.env.BENCH_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
const silent = createLogger({ level: 'silent', pretty: false });
const FROM = 'The Ledger <serial@example.org>';
const ROUNDS = 5;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Reply = { port: number } | { count: number };

function child(args: string[]): ChildProcess {
  return fork(SELF, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

async function reply<T extends Reply>(proc: ChildProcess, ask?: string): Promise<T> {
  const answer = once(proc, 'message');
  if (ask) proc.send(ask);
  return (await answer)[0] as T;
}

async function sinkProcess(): Promise<void> {
  const sink = new SmtpSink({ keep: false });
  await sink.start();
  process.on('message', (m) => {
    if (m === 'count') process.send!({ count: sink.count });
    if (m === 'stop') void sink.stop().then(() => process.exit(0));
  });
  process.send!({ port: sink.port });
}

function projectWith(smtpUrl: string, subscribers: number): Project {
  const project = makeProject({ settings: { mail: { smtpUrl, from: FROM } } });
  const app = project.open();
  try {
    const emails = Array.from({ length: subscribers }, (_, i) => ({ email: `reader${i + 1}@example.com` }));
    if (app.store.subscribers.importActive(emails, 'bench') !== subscribers) throw new Error('import fell short');
  } finally {
    app.store.close();
  }
  return project;
}

/** The bare loop: the rendered installment of one reader, handed to a nodemailer pool `count` times. */
async function bareRate(app: App, smtpUrl: string, count: number): Promise<number> {
  const { config } = app;
  const runtime = createRuntime(app, silent);
  // A renderer of its own, so the feuilleton run below still pays for its one MJML compile.
  const renderer = new EmailRenderer({ templatesDir: config.paths.templates, info: app.info, config, links: runtime.links });
  const sub = app.store.subscribers.iterate({ status: 'active' }).next().value!;
  const inst = app.store.installments.get(1)!;
  const unsubscribeUrl = runtime.links.unsubscribe(sub);
  const filled = (await renderer.installment(inst, { nextDate: null })).fill({ unsubscribeUrl, feedUrl: runtime.links.privateFeed(sub), nextUrl: runtime.links.next(sub) });
  runtime.transport.close();
  // The message the feuilleton transport would hand over, text encoding included: the ratio
  // is then our overhead alone, not a nodemailer setting.
  const mail = { from: config.mail.from, ...listMail(app, filled, sub.email, unsubscribeUrl, runtime.ids.installment(sub, inst.number), 'installment') };
  const transporter = nodemailer.createTransport({ url: smtpUrl, pool: true, maxConnections: config.mail.maxConnections, maxMessages: Infinity });
  let started = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: sendConcurrency(config) }, async () => {
      while (started < count) {
        started++;
        await transporter.sendMail({ ...mail, date: new Date() });
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  transporter.close();
  return count / seconds;
}

async function feuilletonRate(app: App): Promise<number> {
  const runtime = createRuntime(app, silent);
  const start = performance.now();
  const summary = await sendRun(runtime.send);
  const seconds = (performance.now() - start) / 1000;
  runtime.transport.close();
  if (summary.status !== 'finished' || summary.failed) throw new Error(`send did not finish cleanly: ${JSON.stringify(summary)}`);
  return summary.sent / seconds;
}

// Preloaded into the CLI: its peak RSS, as the kernel counted it, on the way out.
const REPORT_PEAK = `data:text/javascript,process.on('exit', () => process.stderr.write('maxRSS ' + process.resourceUsage().maxRSS + '\\n'))`;

/** `feuilleton send` as an operator runs it, in its own process, with its peak RSS. */
async function cliSend(smtpUrl: string, subscribers: number): Promise<{ maxRssMb: number; seconds: number }> {
  const project = projectWith(smtpUrl, subscribers);
  try {
    const start = performance.now();
    const cli = spawnCli(['--config', project.configPath, 'send'], { node: [...V8_OPTIONS, '--import', REPORT_PEAK, CLI] });
    const { code } = await cli.done;
    const output = cli.output();
    const seconds = (performance.now() - start) / 1000;
    const sent = /^  sent (\d+), failed 0,/m.exec(output)?.[1];
    const peak = /^maxRSS (\d+)$/m.exec(output)?.[1];
    if (code !== 0 || Number(sent) !== subscribers || !peak) throw new Error(`feuilleton send to ${subscribers} did not finish cleanly (exit ${code}):\n${output.slice(-2000)}`);
    return { maxRssMb: Number(peak) / 1024, seconds };
  } finally {
    project.cleanup();
  }
}

async function main(): Promise<void> {
  const N = Number(process.argv[2] ?? 20_000);
  const M = Number(process.argv[3] ?? 100_000);
  const sink = child(['sink']);
  const { port } = await reply<{ port: number }>(sink);
  const smtpUrl = `smtp://127.0.0.1:${port}`;
  try {
    // Rounds of one run each, each feuilleton run on a fresh project (its ledger starts
    // empty). On a small shared machine the same run can take half again as long from one
    // minute to the next, so the ratio is the median of the rounds' ratios: the two runs of
    // a round share the machine's mood.
    const ours: number[] = [];
    const bare: number[] = [];
    let expected = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const project = projectWith(smtpUrl, N);
      const app = project.open();
      try {
        if (round === 0) {
          console.log(`send of installment 1 (${app.store.installments.get(1)!.wordCount} words) to ${N} subscribers; pool of ${app.config.mail.maxConnections} connections, ${sendConcurrency(app.config)} messages in flight; ${ROUNDS} rounds`);
          await bareRate(app, smtpUrl, 1000); // warm-up: JIT, sockets
          expected += 1000;
        }
        // Which goes first alternates, so a machine speeding up or slowing down favours neither.
        if (round % 2 === 0) bare.push(await bareRate(app, smtpUrl, N));
        ours.push(await feuilletonRate(app));
        if (round % 2 === 1) bare.push(await bareRate(app, smtpUrl, N));
        expected += 2 * N;
      } finally {
        app.store.close();
        project.cleanup();
      }
    }
    const { count } = await reply<{ count: number }>(sink, 'count');
    if (count !== expected) throw new Error(`the sink received ${count} messages, expected ${expected}`);
    const runs = (rates: number[]) => rates.map((r) => r.toFixed(0)).join(', ');
    console.log(`  feuilleton send       ${median(ours).toFixed(0).padStart(6)} msg/s   (median of ${runs(ours)})`);
    console.log(`  bare nodemailer pool  ${median(bare).toFixed(0).padStart(6)} msg/s   (median of ${runs(bare)})`);
    const ratios = ours.map((o, i) => o / bare[i]!);
    console.log(`  ratio                 ${median(ratios).toFixed(2).padStart(6)}     (target ≥ 0.9; median of the rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`);

    // The bin runs the compiled JavaScript; tsx would add its own compiler to the figure.
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
    console.log(`peak RSS of "feuilleton send" (node ${[...V8_OPTIONS, 'dist/cli.js'].join(' ')} send), whole process:`);
    for (const n of new Set([1_000, M])) {
      const r = await cliSend(smtpUrl, n);
      console.log(`  ${String(n).padStart(7)} subscribers  ${r.maxRssMb.toFixed(0).padStart(4)} MB   (${r.seconds.toFixed(0)} s with start-up)${n === M ? '   (target < 200 MB)' : ''}`);
    }
  } finally {
    sink.send('stop');
    await once(sink, 'exit');
  }
}

if (process.argv[2] === 'sink') await sinkProcess();
else await main();
