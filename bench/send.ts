// What `feuilleton send` costs on top of the SMTP library it drives, and what memory a
// large send holds. In one run, against one local SMTP sink (smtp-server on 127.0.0.1), for
// broadcast and paced mode at each list size:
//   1. messages/second of sendRun (ledger, streaming, the message composed once and filled
//      per reader);
//   2. messages/second of a bare nodemailer pool, same pool size and as many messages in
//      flight, sending the same installment as nodemailer composes it for each message, and
//      as pre-built bytes; the ratios to both (target ≥ 2.0 to the first);
//   3. what DKIM signing costs: the same send with mail.dkim set (a 2048-bit RSA key),
//      in alternating rounds, as microseconds of each message's time;
//   4. peak RSS of `feuilleton send` to M subscribers, the built CLI as operators run it, in
//      a child process, at pools of 5 and 20 (target < 150 MB), next to that of a send to a
//      small list, to show memory stays flat as the list grows.
//   node --import tsx bench/send.ts [sizes=10000,100000] [M=100000]   (BENCH_ROUNDS=3)
// The sink runs in a process of its own, so that sender and server each have a core.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import type { App } from '../src/app.ts';
import { PACKAGE_ROOT } from '../src/config.ts';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { mailOptions } from '../src/deliver/transport.ts';
import { sendConcurrency, sendRun } from '../src/deliver/send.ts';
import { createLogger } from '../src/log.ts';
import { EmailRenderer } from '../src/render/email.ts';
import { createRuntime } from '../src/runtime.ts';
import { makeProject, type Project } from '../test/helpers/project.ts';
import { spawnCli } from '../test/helpers/cli.ts';
import { makeKey } from '../test/helpers/dkim-keys.ts';
import { SmtpSink } from '../test/helpers/smtp-sink.ts';

const SELF = fileURLToPath(import.meta.url);
const CLI = path.join(PACKAGE_ROOT, 'dist', 'cli.js');
// What the bin's first line hands node, as `npx feuilleton` runs it, then any extra flags.
const V8_OPTIONS = [
  ...readFileSync(path.join(PACKAGE_ROOT, 'src', 'cli.ts'), 'utf8')
    .split('\n', 1)[0]!
    .replace(/^#!.*?\bnode\b/, '')
    .split(' '),
  ...(process.env.BENCH_NODE_OPTIONS ?? '').split(' '),
].filter(Boolean);
const silent = createLogger({ level: 'silent', pretty: false });
const FROM = 'The Ledger <serial@example.org>';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

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

type Mode = 'broadcast' | 'paced';

function projectWith(
  smtpUrl: string,
  subscribers: number,
  mode: Mode = 'broadcast',
  maxConnections = 5,
  dkim?: { domainName: string; keySelector: string; privateKeyFile: string },
): Project {
  const project = makeProject({ settings: { mode, mail: { smtpUrl, from: FROM, maxConnections, dkim } } });
  const app = project.open();
  try {
    const emails = Array.from({ length: subscribers }, (_, i) => ({ email: `reader${i + 1}@example.com` }));
    if (app.store.subscribers.importActive(emails, 'bench') !== subscribers) throw new Error('import fell short');
  } finally {
    app.store.close();
  }
  return project;
}

/**
 * The bare loop: the installment as one reader gets it, handed to a nodemailer pool `count`
 * times, composed by nodemailer each time (`sendMail` with the parts), or built once and
 * handed over as the same bytes (`raw`): the second is the most any sender could get from
 * the same pool and sink.
 */
async function bareRate(app: App, smtpUrl: string, count: number, prebuilt: boolean): Promise<number> {
  const { config } = app;
  const runtime = createRuntime(app, silent);
  // A renderer of its own, so the feuilleton run below still pays for its one MJML compile.
  const renderer = new EmailRenderer({
    templatesDir: config.paths.templates,
    info: app.info,
    config,
    links: runtime.links,
    progress: () => app.store.installments.count(),
  });
  const [sub] = app.store.subscribers.iterate({ status: 'active' });
  if (!sub) throw new Error('the bench project has no readers');
  const inst = app.store.installments.get(1)!;
  const prepared = await renderer.installment(inst, { nextDate: null });
  const { email, unsubscribeUrl } = prepared.fillFor(sub);
  runtime.transport.close();
  // The message the feuilleton transport would hand over, text encoding included: the ratio
  // is then our overhead alone, not a nodemailer setting.
  const mail = mailOptions(
    config,
    runtime.send.lists.address(
      email,
      sub.email,
      unsubscribeUrl,
      runtime.ids.installment(sub, inst.number),
      'installment',
    ),
  );
  const raw = await new MailComposer(mail).compile().build();
  const transporter = nodemailer.createTransport({
    url: smtpUrl,
    pool: true,
    maxConnections: config.mail.maxConnections,
    maxMessages: Infinity,
  });
  let started = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: sendConcurrency(config) }, async () => {
      while (started < count) {
        started++;
        await transporter.sendMail(
          prebuilt ? { envelope: { from: 'serial@example.org', to: [sub.email] }, raw } : { ...mail, date: new Date() },
        );
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
  if (summary.status !== 'finished' || summary.failed)
    throw new Error(`send did not finish cleanly: ${JSON.stringify(summary)}`);
  return summary.sent / seconds;
}

/** Broadcast sends to N readers with and without DKIM signing, alternating; the cost per message. */
async function dkimCost(smtpUrl: string, N: number): Promise<void> {
  const keyDir = mkdtempSync(path.join(tmpdir(), 'feuilleton-bench-dkim-'));
  const privateKeyFile = path.join(keyDir, 'dkim.pem');
  writeFileSync(privateKeyFile, makeKey('rsa2048').privateKey);
  const dkim = { domainName: 'example.org', keySelector: 'bench', privateKeyFile };
  const plain: number[] = [];
  const signed: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const withKey of round % 2 === 0 ? [false, true] : [true, false]) {
        const project = projectWith(smtpUrl, N, 'broadcast', 5, withKey ? dkim : undefined);
        const app = project.open();
        try {
          (withKey ? signed : plain).push(await feuilletonRate(app));
        } finally {
          app.store.close();
          project.cleanup();
        }
      }
    }
  } finally {
    rmSync(keyDir, { recursive: true, force: true });
  }
  const [p, d] = [median(plain), median(signed)];
  console.log(`DKIM (rsa-sha256, 2048-bit key), broadcast to ${N}, pool of 5, ${ROUNDS} rounds:`);
  console.log(
    `  feuilleton send, unsigned ${p.toFixed(0).padStart(6)} msg/s   signed ${d.toFixed(0).padStart(6)} msg/s`,
  );
  console.log(
    `  signing costs ${(1e6 / d - 1e6 / p).toFixed(0)} µs of each message's time (${((1 - d / p) * 100).toFixed(0)}% of the rate); relays that sign (mail.relaySignsDkim) pay none of it`,
  );
}

// Preloaded into the CLI: its peak RSS, as the kernel counted it, on the way out.
const REPORT_PEAK = `data:text/javascript,process.on('exit', () => process.stderr.write('maxRSS ' + process.resourceUsage().maxRSS + '\\n'))`;

/** `feuilleton send` as an operator runs it, in its own process, with its peak RSS. */
async function cliSend(
  smtpUrl: string,
  subscribers: number,
  mode: Mode,
  pool: number,
): Promise<{ maxRssMb: number; seconds: number }> {
  const project = projectWith(smtpUrl, subscribers, mode, pool);
  try {
    const start = performance.now();
    const cli = spawnCli(['--config', project.configPath, 'send'], {
      node: [...V8_OPTIONS, '--import', REPORT_PEAK, CLI],
    });
    const { code } = await cli.done;
    const output = cli.output();
    const seconds = (performance.now() - start) / 1000;
    const sent = /^ {2}sent (\d+), failed 0,/m.exec(output)?.[1];
    const peak = /^maxRSS (\d+)$/m.exec(output)?.[1];
    if (code !== 0 || Number(sent) !== subscribers || !peak)
      throw new Error(
        `feuilleton send to ${subscribers} did not finish cleanly (exit ${code}):\n${output.slice(-2000)}`,
      );
    return { maxRssMb: Number(peak) / 1024, seconds };
  } finally {
    project.cleanup();
  }
}

async function main(): Promise<void> {
  const sizes = (process.argv[2] ?? '10000,100000').split(',').map(Number);
  const M = Number(process.argv[3] ?? 100_000);
  const sink = child(['sink']);
  const { port } = await reply<{ port: number }>(sink);
  const smtpUrl = `smtp://127.0.0.1:${port}`;
  try {
    let expected = 0;
    for (const mode of ['broadcast', 'paced'] as Mode[]) {
      for (const N of sizes) {
        // Rounds of one run each, each feuilleton run on a fresh project (its ledger starts
        // empty). On a small shared machine the same run can take half again as long from
        // one minute to the next, so ratios are medians of the rounds' ratios: the runs of a
        // round share the machine's mood.
        const ours: number[] = [];
        const composed: number[] = [];
        const prebuilt: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          const project = projectWith(smtpUrl, N, mode);
          const app = project.open();
          try {
            if (round === 0) {
              console.log(
                `${mode}: installment 1 (${app.store.installments.get(1)!.wordCount} words) to ${N} subscribers; pool of ${app.config.mail.maxConnections}, ${sendConcurrency(app.config)} messages in flight; ${ROUNDS} rounds`,
              );
              await bareRate(app, smtpUrl, 1000, false); // warm-up: JIT, sockets
              expected += 1000;
            }
            // Which goes first alternates, so a machine speeding up or slowing down favours neither.
            if (round % 2 === 0) composed.push(await bareRate(app, smtpUrl, N, false));
            ours.push(await feuilletonRate(app));
            prebuilt.push(await bareRate(app, smtpUrl, N, true));
            if (round % 2 === 1) composed.push(await bareRate(app, smtpUrl, N, false));
            expected += 3 * N;
          } finally {
            app.store.close();
            project.cleanup();
          }
        }
        const runs = (rates: number[]) => rates.map((r) => r.toFixed(0)).join(', ');
        const ratio = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]!)).toFixed(2);
        console.log(`  feuilleton send                 ${median(ours).toFixed(0).padStart(6)} msg/s   (${runs(ours)})`);
        console.log(
          `  nodemailer, composed each time  ${median(composed).toFixed(0).padStart(6)} msg/s   (${runs(composed)})`,
        );
        console.log(
          `  nodemailer, pre-built bytes     ${median(prebuilt).toFixed(0).padStart(6)} msg/s   (${runs(prebuilt)})`,
        );
        console.log(
          `  ratio to composed each time ${ratio(ours, composed).padStart(6)}   (target ≥ 2.0)   ratio to pre-built ${ratio(ours, prebuilt)}`,
        );
      }
    }
    await dkimCost(smtpUrl, sizes[0]!);
    expected += 2 * ROUNDS * sizes[0]!;
    const { count } = await reply<{ count: number }>(sink, 'count');
    if (count !== expected) throw new Error(`the sink received ${count} messages, expected ${expected}`);

    // The bin runs the compiled JavaScript; tsx would add its own compiler to the figure.
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
    console.log(
      `peak RSS of "feuilleton send" (node ${[...V8_OPTIONS, 'dist/cli.js'].join(' ')} send), whole process:`,
    );
    for (const mode of ['broadcast', 'paced'] as Mode[]) {
      for (const pool of [5, 20]) {
        for (const n of new Set([1_000, M])) {
          const r = await cliSend(smtpUrl, n, mode, pool);
          console.log(
            `  ${mode.padEnd(9)} pool ${String(pool).padStart(2)} ${String(n).padStart(7)} subscribers  ${r.maxRssMb.toFixed(0).padStart(4)} MB   (${r.seconds.toFixed(0)} s with start-up)${n === M ? '   (target < 150 MB)' : ''}`,
          );
        }
      }
    }
  } finally {
    sink.send('stop');
    await once(sink, 'exit');
  }
}

if (process.argv[2] === 'sink') await sinkProcess();
else await main();
