// The delivery engine against a real SMTP server (smtp-server on 127.0.0.1) and a real
// SQLite project: what every installment email carries, exactly-once bookkeeping, retries,
// failures, an outage and its resume, and the send command's modes. Mail is read back
// with mailparser, not with anything of ours.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { ParsedMail } from 'mailparser';
import type { App } from '../../src/app.ts';
import { startServing } from '../../src/commands/serve.ts';
import { sendCommand, type SendCliOptions } from '../../src/commands/send.ts';
import { statusReport } from '../../src/commands/status.ts';
import { sendConcurrency, sendNext, sendRun, type SendContext, type SendEvent } from '../../src/deliver/send.ts';
import { HeaderInjectionError, type MailTransport } from '../../src/deliver/transport.ts';
import { UserError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { installmentText, normalizeForCompare } from '../helpers/story-text.ts';
import { mjmlWorkerRunning } from '../../src/render/mjml.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import type { StoredInstallment } from '../../src/store/installments.ts';
import type { Subscriber } from '../../src/store/subscribers.ts';
import { makeProject, type Project } from '../helpers/project.ts';
import { emailStoryHtml, emailStoryText, plainText } from '../helpers/feeds-site.ts';
import { headerValue, SmtpSink, type Received } from '../helpers/smtp-sink.ts';

const FROM = 'The Ledger <serial@example.org>';
const silent = createLogger({ level: 'silent', pretty: false });

interface Env {
  sink: SmtpSink;
  project: Project;
  app: App;
  runtime: Runtime;
  ctx: SendContext;
  /** What the engine logged (bounces, recoveries): the lines, and the events as logged. */
  log: string[];
  events: SendEvent[];
  subscribe(...emails: string[]): Subscriber[];
  /** `feuilleton send` with these options: exit code and printed lines. */
  command(opts?: SendCliOptions): Promise<{ code: number; lines: string[] }>;
  close(): Promise<void>;
}

const open: Env[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function setup(
  opts: {
    mode?: 'broadcast' | 'paced';
    story?: string;
    mail?: Record<string, unknown>;
    delivery?: Record<string, unknown>;
    files?: Record<string, string>;
  } = {},
): Promise<Env> {
  const sink = new SmtpSink();
  await sink.start();
  const project = makeProject({
    story: opts.story,
    settings: {
      mode: opts.mode ?? 'broadcast',
      mail: { smtpUrl: sink.url, from: FROM, maxConnections: 2, ...opts.mail },
      // Real backoff, short enough that a test waits milliseconds, not minutes.
      delivery: { backoffBaseMs: 5, backoffMaxMs: 20, ...opts.delivery },
      // These tests send one broadcast run after another on purpose (reader.test.ts covers the minimum interval).
      schedule: { enabled: false, minIntervalHours: 0 },
    },
  });
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(path.join(project.dir, name), content);
  const app = project.open();
  const runtime = createRuntime(app, silent);
  const log: string[] = [];
  const events: SendEvent[] = [];
  const ctx: SendContext = { ...runtime.send, log: (e) => (events.push(e), log.push(e.message)) };
  const env: Env = {
    sink,
    project,
    app,
    runtime,
    ctx,
    log,
    events,
    subscribe: (...emails) => emails.map((email) => app.store.subscribers.create({ email, status: 'active' })),
    async command(cli = {}) {
      const lines: string[] = [];
      const code = await sendCommand(ctx, cli, (l) => lines.push(l));
      return { code, lines };
    },
    async close() {
      runtime.close();
      await sink.stop();
      project.cleanup();
    },
  };
  open.push(env);
  return env;
}

/** The transport, with `before` run as each message is handed over (composed per message or built once and filled). */
function beforeEachSend(transport: MailTransport, before: () => void): MailTransport {
  return {
    ...transport,
    send: (mail) => (before(), transport.send(mail)),
    ...(transport.sendRaw && {
      sendRaw: (to: string, raw: Buffer, id: string) => (before(), transport.sendRaw!(to, raw, id)),
    }),
  };
}

const GREYLISTED = { code: 451, message: '4.7.1 Greylisted, try again later' };

const emails = (prefix: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}${i + 1}@example.com`);

/** Which installment a received message carries, from its deterministic Message-ID (undefined: not an installment). */
function installmentOf(r: Received): number | undefined {
  const m = /^Message-ID:\s*<installment\.(\d+)\./im.exec(r.raw.toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/** Installment numbers each address received, in arrival order. */
function receivedBy(sink: SmtpSink, addresses: string[]): Map<string, number[]> {
  const got = new Map(addresses.map((a) => [a, [] as number[]]));
  for (const r of sink.received) {
    const n = installmentOf(r);
    if (n !== undefined) for (const to of r.to) got.get(to)?.push(n);
  }
  return got;
}

/** The installment's story as a reader sees it in each part of an email. */
const storyInHtml = (mail: ParsedMail): string => plainText(emailStoryHtml(mail.html as string));
const storyInText = (mail: ParsedMail, inst: StoredInstallment): string => emailStoryText(mail.text!, inst.title);

describe('feuilleton send over SMTP', () => {
  it('gives every installment email a stable Message-ID, one-click List-Unsubscribe, List-Id, Date, From and a text part with the same text as the HTML', async () => {
    const env = await setup();
    const subs = env.subscribe(...emails('reader', 3));
    const before = Date.now();
    const summary = await sendRun(env.ctx);
    assert.equal(summary.status, 'finished');
    assert.equal(summary.sent, 3);

    const inst = env.app.store.installments.get(1)!;
    const expectedText = normalizeForCompare(installmentText(inst.blocks));
    for (const sub of subs) {
      const mine = env.sink.to(sub.email);
      assert.equal(mine.length, 1);
      const raw = mine[0]!.raw.toString('latin1');
      const mail = await env.sink.parse(mine[0]!);

      const id = env.runtime.ids.installment(sub, 1);
      assert.equal(mail.messageId, id);
      assert.equal(
        env.app.store.deliveries.get(sub.id, 1)!.messageId,
        id,
        'the ledger keeps the Message-ID that went out',
      );

      const unsubscribeUrl = env.runtime.links.unsubscribe(sub);
      assert.equal(
        headerValue(mail, 'List-Unsubscribe'),
        `<${unsubscribeUrl}>`,
        'one-click HTTPS only: no mailbox reads a mailto',
      );
      const token = new URL(unsubscribeUrl).searchParams.get('token')!;
      assert.ok(env.runtime.links.verify('unsubscribe', token, sub), 'the unsubscribe link is signed for this reader');
      assert.equal(headerValue(mail, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
      assert.equal(headerValue(mail, 'List-Id'), "The Lamplighter's Ledger <the-lamplighter-s-ledger.example.org>");

      assert.ok(mail.date, 'Date header');
      // The Date header has whole seconds.
      assert.ok(
        mail.date.getTime() >= Math.floor(before / 1000) * 1000 && mail.date.getTime() <= Date.now(),
        `Date ${mail.date.toISOString()} is the time of sending`,
      );
      assert.deepEqual(mail.from?.value, [{ address: 'serial@example.org', name: 'The Ledger' }]);
      assert.equal(mail.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined, sub.email);
      assert.equal(mail.subject, "The Lamplighter's Ledger — Part 1");

      assert.match(raw, /^Content-Type: multipart\/alternative;/m);
      assert.match(raw, /^Content-Type: text\/plain; charset=utf-8/m, 'a text/plain part');
      assert.match(raw, /^Content-Type: text\/html; charset=utf-8/m);
      assert.match(raw, /^Content-Transfer-Encoding: quoted-printable/m, 'Latin prose travels readable');
      assert.ok(mail.text && typeof mail.html === 'string');
      const inText = storyInText(mail, inst);
      const inHtml = storyInHtml(mail);
      assert.equal(inText, inHtml, 'the text part carries the same installment text as the HTML part');
      assert.equal(inText, expectedText, 'and it is the installment, whole');
      assert.ok(inText.length > 3000);
    }
  });

  it('sends a story in another script base64-encoded, and it reads back intact', async () => {
    const paragraph = 'Фонарщик записывал в книгу каждый зажжённый фонарь, номер за номером, до самого мола.';
    const env = await setup({
      story: `Title: Книга фонарщика\nBy Автор\n\n${Array.from({ length: 6 }, () => paragraph).join('\n\n')}\n`,
    });
    env.subscribe('reader@example.com');
    await sendRun(env.ctx);
    const raw = env.sink.received[0]!.raw.toString('latin1');
    assert.doesNotMatch(raw, /^Content-Transfer-Encoding: quoted-printable/m);
    assert.equal(raw.match(/^Content-Transfer-Encoding: base64/gm)?.length, 2, 'both parts');
    const mail = await env.sink.parse(env.sink.received[0]!);
    assert.equal(mail.subject, 'Книга фонарщика — Part 1');
    const inst = env.app.store.installments.get(1)!;
    const expected = normalizeForCompare(installmentText(inst.blocks));
    assert.equal(expected.split(paragraph).length - 1, 6);
    assert.equal(storyInText(mail, inst), expected);
    assert.equal(storyInHtml(mail), expected);
  });

  it('refuses a header value with a line break and sends nothing', async () => {
    const env = await setup();
    const mail = {
      to: 'reader@example.com',
      subject: 'Hello',
      html: '<p>x</p>',
      text: 'x',
      messageId: '<x@example.org>',
    };
    await assert.rejects(
      env.runtime.transport.send({ ...mail, subject: 'Hello\r\nBcc: victim@example.com' }),
      HeaderInjectionError,
    );
    await assert.rejects(env.runtime.transport.send({ ...mail, headers: { 'List-Id': 'a\nb' } }), HeaderInjectionError);
    await assert.rejects(
      env.runtime.transport.send({ ...mail, to: 'reader@example.com\nBcc: victim@example.com' }),
      HeaderInjectionError,
    );
    assert.equal(env.sink.count, 0);
  });

  it("writes each reader's copy into a buffer the server has finished with: as many buffers as messages in flight, each copy its reader's", async () => {
    const env = await setup({ mail: { maxConnections: 5 } });
    const list = emails('reader', 300);
    env.subscribe(...list);
    const buffers = new Set<ArrayBufferLike>();
    const { transport } = env.ctx;
    const ctx: SendContext = {
      ...env.ctx,
      transport: { ...transport, sendRaw: (to, raw, id) => (buffers.add(raw.buffer), transport.sendRaw!(to, raw, id)) },
    };
    const summary = await sendRun(ctx);
    assert.equal(summary.sent, 300);
    assert.ok(buffers.size <= sendConcurrency(env.app.config), `${buffers.size} buffers for 300 messages`);
    // A buffer written over too soon would show as a copy addressed, numbered or linked for another reader.
    assert.deepEqual(new Set(env.sink.received.flatMap((r) => r.to)), new Set(list));
    for (const r of env.sink.received) {
      const sub = env.app.store.subscribers.byEmail(r.to[0]!)!;
      const mail = await env.sink.parse(r);
      assert.equal(headerValue(mail, 'To'), sub.email);
      assert.equal(mail.messageId, env.runtime.ids.installment(sub, 1));
      const unsubscribe = env.runtime.links.unsubscribe(sub);
      assert.equal(headerValue(mail, 'List-Unsubscribe'), `<${unsubscribe}>`);
      assert.ok(mail.text!.includes(unsubscribe), sub.email);
    }
  });

  it('broadcast: marks the installment published as its run starts and sends it to each subscriber exactly once', async () => {
    const env = await setup();
    const first = emails('early', 4);
    env.subscribe(...first);
    const { installments } = env.app.store;
    const publishedWhenMailFlowed: boolean[] = [];
    env.sink.rcptRule = () => {
      publishedWhenMailFlowed.push(
        installments.get(1)!.publishedAt !== null && installments.get(2)!.publishedAt === null,
      );
      return undefined;
    };
    assert.equal(installments.get(1)!.publishedAt, null);
    const one = await sendRun(env.ctx);
    assert.deepEqual([one.installment, one.sent, one.skipped, one.failed], [1, 4, 0, 0]);
    assert.ok(
      publishedWhenMailFlowed.length === 4 && publishedWhenMailFlowed.every(Boolean),
      'installment 1 (only) was published before the first message',
    );
    env.sink.rcptRule = undefined;

    const late = env.subscribe('late@example.com')[0]!;
    const two = await sendRun(env.ctx);
    assert.deepEqual(
      [two.installment, two.sent, two.planned],
      [2, 5, 5],
      'the second send is the next installment, to everyone active now',
    );
    const got = receivedBy(env.sink, [...first, late.email]);
    for (const e of first) assert.deepEqual(got.get(e), [1, 2], e);
    assert.deepEqual(got.get(late.email), [2]);

    // Asking for installment 1 again reaches only the reader who never had it.
    const again = await sendRun(env.ctx, { installment: 1 });
    assert.deepEqual([again.sent, again.skipped], [1, 4]);
    assert.deepEqual(receivedBy(env.sink, [late.email]).get(late.email), [2, 1]);
    assert.equal(env.sink.count, 10);
    assert.deepEqual(
      { ...env.app.store.deliveries.countByStatus() },
      { queued: 0, sending: 0, sent: 10, failed: 0, possibleDuplicates: 0 },
    );
    assert.deepEqual(
      installments.all().map((i) => i.publishedAt !== null),
      [true, true, false, false],
    );
  });

  it('retries a 4xx reply with backoff until the server takes the message, under the same Message-ID', async () => {
    const env = await setup({ delivery: { maxAttempts: 5 } });
    const [grey, plain] = env.subscribe('grey@example.com', 'plain@example.com');
    env.sink.rcptRule = (address, attempt) => (address === grey!.email && attempt <= 2 ? GREYLISTED : undefined);
    const summary = await sendRun(env.ctx);
    assert.deepEqual([summary.status, summary.sent, summary.failed, summary.retried], ['finished', 2, 0, 2]);
    const d = env.app.store.deliveries.get(grey!.id, 1)!;
    assert.equal(d.status, 'sent');
    assert.equal(d.attempts, 3);
    assert.equal(env.sink.to(grey!.email).length, 1);
    assert.equal(env.sink.to(plain!.email).length, 1);
    assert.equal((await env.sink.parse(env.sink.to(grey!.email)[0]!)).messageId, env.runtime.ids.installment(grey!, 1));
  });

  it('keeps the other readers flowing while more messages wait out a backoff than the pool has connections', async () => {
    // Pool of 2: 4 slots. Three greylisted readers come first; their backoff must not hold
    // up the twenty readers behind them. The backoff here lasts until those twenty have
    // arrived (or 10 s, which would fail the test): no real waiting, no race with the clock.
    const env = await setup({ delivery: { maxAttempts: 3 } });
    const grey = env.subscribe(...emails('grey', 3));
    const plain = env.subscribe(...emails('plain', 20));
    env.sink.rcptRule = (address, attempt) => (address.startsWith('grey') && attempt === 1 ? GREYLISTED : undefined);
    env.ctx.wait = () => env.sink.waitFor((received) => received.length >= 20).catch(() => undefined);
    const summary = await sendRun(env.ctx);
    assert.deepEqual([summary.status, summary.sent, summary.retried], ['finished', 23, 3]);
    const order = env.sink.received.map((r) => r.to[0]!);
    assert.deepEqual(
      new Set(order.slice(0, 20)),
      new Set(plain.map((s) => s.email)),
      `every other reader was sent before the first retry: ${order.join(' ')}`,
    );
    assert.deepEqual(new Set(order.slice(20)), new Set(grey.map((s) => s.email)));
  });

  it('never has more rows in sending than messages in flight allow, through batches and retries', async () => {
    const env = await setup({ mail: { maxConnections: 3 }, delivery: { maxAttempts: 4 } });
    const readers = env.subscribe(...emails('reader', 40));
    env.sink.rcptRule = (address, attempt) =>
      /^reader\d*[37]@/.test(address) && attempt <= 2 ? GREYLISTED : undefined;
    const { transport } = env.ctx;
    const seen: number[] = [];
    env.ctx.transport = beforeEachSend(transport, () => seen.push(env.app.store.deliveries.countByStatus().sending));
    const summary = await sendRun(env.ctx);
    assert.deepEqual([summary.status, summary.sent], ['finished', readers.length]);
    assert.ok(seen.length > readers.length, 'retries went through the transport too');
    assert.ok(Math.max(...seen) <= sendConcurrency(env.app.config), `rows in sending at each send: ${seen.join(' ')}`);
    assert.equal(env.app.store.deliveries.countByStatus().sending, 0);
  });

  it('a broadcast gives back the MJML compiler before its first message, The End included', async () => {
    // One installment: the run is the story's last, so "The End" follows it.
    const env = await setup({ story: 'Title: Short\nBy Someone\n\nOne paragraph, the whole story.\n' });
    const readers = env.subscribe(...emails('reader', 6));
    const running: boolean[] = [];
    env.ctx.transport = beforeEachSend(env.ctx.transport, () => running.push(mjmlWorkerRunning()));
    const summary = await sendRun(env.ctx);
    assert.deepEqual([summary.status, summary.sent, summary.finishedReaders], ['finished', 6, 6]);
    assert.deepEqual(running, Array(readers.length).fill(false), 'no compiler was loaded while sending');
    const ends = env.sink.received.filter((r) => /^Message-ID:\s*<the-end\./im.test(r.raw.toString('latin1')));
    assert.equal(ends.length, 6, 'every reader got The End, composed before the run began');
  });

  it('a paced run composes every installment its readers stand at before its first message', async () => {
    const env = await setup({ mode: 'paced' });
    const readers = env.subscribe(...emails('reader', 9));
    const total = env.app.store.installments.count().total;
    // Readers at the first, the second and the last installment.
    readers.forEach((r, i) => env.app.store.subscribers.advance(r.id, [0, 1, total - 1][i % 3]!));
    const running: boolean[] = [];
    env.ctx.transport = beforeEachSend(env.ctx.transport, () => running.push(mjmlWorkerRunning()));
    const summary = await sendRun(env.ctx);
    assert.deepEqual([summary.status, summary.sent, summary.finishedReaders], ['finished', 9, 3]);
    assert.deepEqual(running, Array(readers.length).fill(false), 'no compiler was loaded while sending');
    assert.deepEqual(
      [...new Set(env.sink.received.map(installmentOf).filter((n) => n !== undefined))].sort((a, b) => a - b),
      [1, 2, total],
    );
  });

  it('a shutdown during a long backoff stops the run at once: sent marked, the waiting one queued for --resume', async () => {
    const env = await setup({ delivery: { maxAttempts: 5, backoffBaseMs: 60_000, backoffMaxMs: 60_000 } });
    const [grey, plain] = env.subscribe('grey@example.com', 'plain@example.com');
    env.sink.rcptRule = (address) => (address === grey!.email ? GREYLISTED : undefined);
    const abort = new AbortController();
    const started = Date.now();
    const run = sendRun(env.ctx, {
      signal: abort.signal,
      // Both messages are settled one way or the other by the first retry: now shut down.
      onProgress: (c) => c.retried === 1 && c.sent === 1 && abort.abort(),
    });
    const summary = await run;
    assert.ok(Date.now() - started < 10_000, 'did not wait out the one-minute backoff');
    assert.deepEqual([summary.status, summary.sent, summary.retried], ['paused', 1, 1]);
    assert.match(summary.reason ?? '', /stopped \(shutdown\); resume with: feuilleton send --resume/);
    assert.equal(
      env.app.store.deliveries.get(plain!.id, 1)!.status,
      'sent',
      'the accepted message is marked sent before the run returns',
    );
    assert.equal(env.app.store.deliveries.get(grey!.id, 1)!.status, 'queued');
    env.sink.rcptRule = undefined;
    const resumed = await sendRun(env.ctx, { resume: true });
    assert.deepEqual([resumed.status, resumed.sent, resumed.possibleDuplicates], ['finished', 1, 0]);
    assert.equal(env.sink.to(grey!.email).length, 1);
    assert.equal(env.sink.to(plain!.email).length, 1);
  });

  it("marks a delivery failed with the server's 5xx reply, does not retry it, and still delivers to the others", async () => {
    const env = await setup();
    const [a, gone, b] = env.subscribe('a@example.com', 'gone@example.com', 'b@example.com');
    let goneTries = 0;
    env.sink.rcptRule = (address) => {
      if (address !== gone!.email) return undefined;
      goneTries++;
      return { code: 550, message: '5.1.1 No such user here' };
    };
    const { code, lines } = await env.command();
    assert.equal(code, 1, 'a failed delivery makes the command exit 1');
    assert.match(lines.join('\n'), /sent 2, failed 1, retried 0/);
    const d = env.app.store.deliveries.get(gone!.id, 1)!;
    assert.equal(d.status, 'failed');
    assert.match(d.lastError ?? '', /^550 5\.1\.1 No such user here/);
    assert.equal(goneTries, 1);
    assert.deepEqual(
      env.events.map(({ event, level, subscriber, installment }) => ({ event, level, subscriber, installment })),
      [{ event: 'delivery.failed', level: 'warn', subscriber: gone!.id, installment: 1 }],
      'logged as a structured warning with the reader and installment',
    );
    assert.match(env.events[0]!.reply ?? '', /^550 5\.1\.1 No such user here/);
    assert.equal(env.sink.to(a!.email).length, 1);
    assert.equal(env.sink.to(b!.email).length, 1);
    assert.equal(env.sink.to(gone!.email).length, 0);
    assert.equal(env.app.store.subscribers.get(gone!.id)!.status, 'active', 'one bounce is below delivery.bounceLimit');
  });

  it('marks a subscriber bounced after delivery.bounceLimit hard bounces and stops mailing them', async () => {
    const env = await setup({ delivery: { bounceLimit: 2 } });
    const [gone, fine] = env.subscribe('gone@example.com', 'fine@example.com');
    let goneTries = 0;
    env.sink.rcptRule = (address) =>
      address === gone!.email ? (goneTries++, { code: 550, message: '5.1.1 Mailbox unavailable' }) : undefined;

    await sendRun(env.ctx);
    assert.deepEqual(
      [env.app.store.subscribers.get(gone!.id)!.status, env.app.store.subscribers.get(gone!.id)!.hardBounces],
      ['active', 1],
    );
    await sendRun(env.ctx);
    assert.equal(env.app.store.subscribers.get(gone!.id)!.status, 'bounced');
    assert.equal(env.app.store.subscribers.get(gone!.id)!.statusReason, 'bounce', 'the record says why');
    assert.ok(env.log.some((l) => l.includes('gone@example.com marked bounced after 2 hard bounces')));
    const third = await sendRun(env.ctx);
    assert.deepEqual([third.sent, third.failed, goneTries], [1, 0, 2], 'a bounced address is not tried again');
    assert.deepEqual(receivedBy(env.sink, [fine!.email]).get(fine!.email), [1, 2, 3]);
  });

  it('pauses, rather than failing and bouncing the whole list, when the server refuses the sender (5xx at MAIL FROM)', async () => {
    const env = await setup({ delivery: { bounceLimit: 1 } });
    const all = emails('reader', 5);
    const subs = env.subscribe(...all);
    env.sink.mailFromRule = () => ({ code: 550, message: '5.7.1 Sender not allowed to relay' });
    const refused = await env.command();
    assert.equal(refused.code, 2, refused.lines.join(' | '));
    assert.match(
      refused.lines.join('\n'),
      /the mail server refused the session: 550 5\.7\.1 Sender not allowed to relay; fix mail settings, then: feuilleton send --resume/,
    );
    for (const s of subs)
      assert.deepEqual(
        [env.app.store.subscribers.get(s.id)!.status, env.app.store.subscribers.get(s.id)!.hardBounces],
        ['active', 0],
        `${s.email} is not blamed for the sender's refusal`,
      );
    assert.deepEqual(
      [env.app.store.deliveries.countByStatus().failed, env.app.store.deliveries.countByStatus().sent],
      [0, 0],
    );

    env.sink.mailFromRule = undefined;
    const resumed = await env.command({ resume: true });
    assert.equal(resumed.code, 0, resumed.lines.join(' | '));
    for (const [e, got] of receivedBy(env.sink, all)) assert.deepEqual(got, [1], e);
  });

  it('pauses the run when the mail server goes away, and --resume after it is back sends the rest: nothing lost, nothing doubled', async () => {
    const env = await setup({ delivery: { maxAttempts: 3 } });
    const all = emails('reader', 40);
    const subs = env.subscribe(...all);
    const port = env.sink.port;
    let outage: Promise<void> | undefined;
    env.sink.rcptRule = () => {
      if (env.sink.count >= 12) outage ??= env.sink.stop();
      return undefined;
    };
    const paused = await env.command();
    assert.equal(paused.code, 2, `paused exits 2: ${paused.lines.join(' | ')}`);
    assert.match(paused.lines.join('\n'), /: paused\./);
    assert.match(
      paused.lines.join('\n'),
      /mail server unavailable after \d+ attempts .*resume with: feuilleton send --resume/,
    );
    await outage;
    const before = env.sink.count;
    assert.ok(before >= 12 && before < 40, `the outage came mid-run (${before} delivered)`);

    const ledger = env.app.store.deliveries.countByStatus();
    assert.equal(ledger.sending, 0, 'nothing is left claimed');
    assert.equal(ledger.sent, before, 'the ledger agrees with the server on what was delivered');
    assert.equal(ledger.failed, 0, 'an outage fails nobody');
    assert.equal(env.app.store.runs.unfinished()?.status, 'paused');
    await assert.rejects(
      sendRun(env.ctx),
      (err: Error) => err instanceof UserError && /did not finish .* --resume/.test(err.message),
    );

    // The row that exhausted its tries gets a fresh budget on --resume: one 451 is retried, not a new pause.
    const tired = subs.find((s) => {
      const d = env.app.store.deliveries.get(s.id, 1);
      return d?.status === 'queued' && d.attempts >= 3;
    });
    assert.ok(tired, 'a delivery was requeued after using up delivery.maxAttempts');
    let greylisted = false;
    env.sink.rcptRule = (address) =>
      address === tired.email && !greylisted
        ? ((greylisted = true), { code: 451, message: '4.3.2 Try again' })
        : undefined;
    await env.sink.start(port);
    const resumed = await env.command({ resume: true });
    assert.equal(resumed.code, 0, resumed.lines.join(' | '));
    assert.match(resumed.lines.join('\n'), new RegExp(`sent ${40 - before}, failed 0, retried 1`));
    assert.ok(greylisted);
    const got = receivedBy(env.sink, all);
    for (const e of all) assert.deepEqual(got.get(e), [1], `${e} has installment 1 exactly once`);
    assert.equal(env.app.store.deliveries.countByStatus().sent, 40);
    for (const s of subs) assert.equal(env.app.store.deliveries.get(s.id, 1)!.status, 'sent');
    assert.equal(env.app.store.runs.unfinished(), undefined);
    assert.equal(env.app.store.runs.latest()!.status, 'finished');
  });

  it('--dry-run lists who would get what, and sends and records nothing', async () => {
    const env = await setup();
    const all = emails('reader', 3);
    env.subscribe(...all);
    const { code, lines } = await env.command({ dryRun: true });
    assert.equal(code, 0);
    assert.deepEqual(lines, [
      ...all.map((e) => `would send installment 1 to ${e}`),
      'Dry run (broadcast): 3 message(s) would be sent; nothing was sent or recorded.',
    ]);
    assert.equal(env.sink.count, 0);
    assert.deepEqual(
      { ...env.app.store.deliveries.countByStatus() },
      { queued: 0, sending: 0, sent: 0, failed: 0, possibleDuplicates: 0 },
    );
    assert.equal(env.app.store.runs.latest(), undefined);
    assert.equal(env.app.store.installments.get(1)!.publishedAt, null);
  });

  it('--to sends one "[TEST]" message that is not recorded as a delivery', async () => {
    const env = await setup();
    const [reader] = env.subscribe('reader@example.com');
    const first = await env.command({ to: 'Author@Example.org' });
    assert.equal(first.code, 0);
    const third = await env.command({ to: 'author@example.org', installment: 3 });
    assert.equal(third.code, 0);
    assert.equal(env.sink.count, 2);
    const mails = await Promise.all(env.sink.received.map((r) => env.sink.parse(r)));
    assert.deepEqual(
      mails.map((m) => m.subject),
      ["[TEST] The Lamplighter's Ledger — Part 1", "[TEST] The Lamplighter's Ledger — Part 3"],
    );
    assert.deepEqual(
      env.sink.received.map((r) => r.to),
      [['Author@example.org'], ['author@example.org']],
      'the domain is normalized, the local part kept',
    );
    assert.ok(
      mails.every((m) => m.text && headerValue(m, 'List-Unsubscribe-Post')),
      'a test send looks like the real thing',
    );
    assert.notEqual(
      mails[0]!.messageId,
      env.runtime.ids.installment({ feedToken: 'test-send' }, 1),
      'test sends are not collapsed by Message-ID',
    );
    assert.equal(env.app.store.deliveries.forSubscriber(reader!.id).length, 0);
    assert.deepEqual(
      { ...env.app.store.deliveries.countByStatus() },
      { queued: 0, sending: 0, sent: 0, failed: 0, possibleDuplicates: 0 },
    );
    assert.equal(env.app.store.runs.latest(), undefined);
    assert.equal(env.app.store.installments.get(1)!.publishedAt, null, 'a test send publishes nothing');
  });

  it('--limit N sends N messages and pauses; --resume sends the rest', async () => {
    const env = await setup();
    const all = emails('reader', 7);
    env.subscribe(...all);
    const limited = await env.command({ limit: 3 });
    assert.equal(limited.code, 2);
    assert.match(limited.lines.join('\n'), /sent 3, failed 0/);
    assert.match(limited.lines.join('\n'), /stopped at --limit 3/);
    assert.equal(env.sink.count, 3);
    const rest = await env.command({ resume: true });
    assert.equal(rest.code, 0);
    assert.match(rest.lines.join('\n'), /sent 4, failed 0/);
    const got = receivedBy(env.sink, all);
    for (const e of all) assert.deepEqual(got.get(e), [1], e);
  });

  it('--limit N counts only messages the server took: a refusal in the last batch is made up from the next reader', async () => {
    const env = await setup({ mail: { maxConnections: 3 } });
    const all = emails('reader', 10);
    env.subscribe(...all);
    env.sink.rcptRule = (address) =>
      address === 'reader5@example.com' ? { code: 550, message: '5.1.1 No such mailbox' } : undefined;
    const limited = await env.command({ limit: 5 });
    assert.match(limited.lines.join('\n'), /sent 5, failed 1/);
    assert.match(limited.lines.join('\n'), /stopped at --limit 5/);
    assert.equal(env.sink.count, 5);
    const rest = await env.command({ resume: true });
    assert.match(rest.lines.join('\n'), /sent 4, failed 0/);
    const got = receivedBy(env.sink, all);
    for (const e of all) assert.deepEqual(got.get(e), e === 'reader5@example.com' ? [] : [1], e);
  });

  it('--limit as large as the list finishes the run rather than pausing it', async () => {
    const env = await setup();
    env.subscribe(...emails('reader', 4));
    const run = await env.command({ limit: 4 });
    assert.equal(run.code, 0, run.lines.join('\n'));
    assert.match(run.lines.join('\n'), /sent 4, failed 0/);
    assert.doesNotMatch(run.lines.join('\n'), /stopped at --limit/);
    assert.equal(env.sink.count, 4);
    assert.equal(env.app.store.runs.unfinished(), undefined);
  });

  it('paced: each reader gets their own next installment per run, and "The End" once after the last', async () => {
    const env = await setup({ mode: 'paced' });
    const { subscribers, installments } = env.app.store;
    const total = installments.count().total;
    assert.equal(total, 4);
    const [fresh, middle, nearEnd] = env.subscribe('fresh@example.com', 'middle@example.com', 'near-end@example.com');
    subscribers.advance(middle!.id, 2);
    subscribers.advance(nearEnd!.id, 3);
    subscribers.create({ email: 'pending@example.com', status: 'pending' });
    const addresses = [fresh!.email, middle!.email, nearEnd!.email, 'pending@example.com'];

    const one = await sendRun(env.ctx);
    assert.deepEqual([one.mode, one.sent, one.finishedReaders], ['paced', 3, 1]);
    assert.deepEqual([...receivedBy(env.sink, addresses).values()], [[1], [3], [4], []]);
    assert.deepEqual(
      installments.all().map((i) => i.publishedAt !== null),
      [true, false, false, false],
      'the public feed moves one installment per run',
    );
    const theEnd = env.sink.received.filter((r) => /^Message-ID:\s*<the-end\./im.test(r.raw.toString('latin1')));
    assert.deepEqual(
      theEnd.map((r) => r.to),
      [[nearEnd!.email]],
    );

    const two = await sendRun(env.ctx);
    assert.deepEqual([two.sent, two.finishedReaders], [2, 1]);
    const got = receivedBy(env.sink, [fresh!.email, middle!.email]);
    assert.deepEqual(
      [...got.values()],
      [
        [1, 2],
        [3, 4],
      ],
    );
    assert.equal(env.sink.count, 3 + 1 + 2 + 1, 'installments plus one "The End" per finished reader, nothing twice');
    assert.deepEqual(
      [
        subscribers.get(fresh!.id)!.position,
        subscribers.get(middle!.id)!.position,
        subscribers.get(nearEnd!.id)!.position,
      ],
      [2, 4, 4],
    );

    // The paced email carries this reader's own "send me the next one now" link.
    const mail = await env.sink.parse(env.sink.to(fresh!.email)[0]!);
    assert.ok(
      typeof mail.html === 'string' && mail.html.includes(env.runtime.links.next(fresh!).replace(/&/g, '&amp;')),
    );
  });

  it('broadcast: the last installment is followed by one "The End" to every reader it reached, and only once', async () => {
    const env = await setup();
    const [stays, leaves] = env.subscribe('stays@example.com', 'leaves@example.com');
    const total = env.app.store.installments.count().total;
    for (let n = 1; n < total; n++)
      assert.equal((await sendRun(env.ctx)).finishedReaders, 0, `no ending after installment ${n}`);
    env.app.store.subscribers.unsubscribe(leaves!.id);
    const last = await sendRun(env.ctx);
    assert.deepEqual([last.installment, last.sent, last.finishedReaders], [total, 1, 1]);
    const endings = () => env.sink.received.filter((r) => /^Message-ID:\s*<the-end\./im.test(r.raw.toString('latin1')));
    assert.deepEqual(
      endings().map((r) => r.to),
      [[stays!.email]],
    );
    const mail = await env.sink.parse(endings()[0]!);
    assert.match(mail.text ?? '', /The End[\s\S]*read the whole story/i);
    assert.equal((await sendRun(env.ctx)).status, 'nothing-to-send');
    assert.equal(endings().length, 1, 'a run after the end sends no second ending');
  });

  it('paced: sendNext (and POST /next) sends the reader their next installment at once, through the same ledger', async () => {
    const env = await setup({ mode: 'paced' });
    const [reader, done] = env.subscribe('reader@example.com', 'done@example.com');
    env.app.store.subscribers.advance(done!.id, 4);

    assert.deepEqual(await sendNext(env.ctx, reader!.id), { status: 'sent', installment: 1 });
    assert.deepEqual(await sendNext(env.ctx, reader!.id), { status: 'sent', installment: 2 });
    assert.deepEqual(await sendNext(env.ctx, done!.id), { status: 'finished' });
    const latestRun = env.app.store.runs.get(env.app.store.deliveries.get(reader!.id, 2)!.runId!)!;
    assert.equal(latestRun.kind, 'on-demand');
    assert.equal(
      env.app.store.installments.get(1)!.publishedAt,
      null,
      'on demand follows the reader, not the public calendar',
    );

    // The scheduled run then continues after the on-demand ones, never repeating them.
    const run = await sendRun(env.ctx);
    assert.equal(run.sent, 1);
    assert.deepEqual(receivedBy(env.sink, [reader!.email]).get(reader!.email), [1, 2, 3]);

    // The "send me the next one now" button: a POST to /next on the real server.
    const serving = await startServing(env.app, silent, { host: '127.0.0.1', port: 0 });
    try {
      const token = new URL(env.runtime.links.next(reader!)).searchParams.get('token')!;
      const res = await fetch(new URL('/next', serving.url), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
      });
      const page = await res.text();
      assert.equal(res.status, 200, page);
      assert.match(page, /Installment 4 is on its way to reader@example\.com/);
    } finally {
      // Closes the app's database too.
      await serving.stop();
    }
    assert.deepEqual(receivedBy(env.sink, [reader!.email]).get(reader!.email), [1, 2, 3, 4]);
    const reopened = env.project.open();
    try {
      assert.equal(reopened.store.subscribers.get(reader!.id)!.position, 4);
      assert.equal(reopened.store.deliveries.get(reader!.id, 4)!.status, 'sent');
    } finally {
      reopened.store.close();
    }
  });

  it('signs every email with DKIM when a key file is configured', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const env = await setup({
      mail: { dkim: { domainName: 'example.org', keySelector: 'ledger', privateKeyFile: 'dkim.pem' } },
      files: { 'dkim.pem': privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
    });
    env.subscribe('reader@example.com');
    await sendRun(env.ctx);
    const check = verifyDkim(env.sink.received[0]!.raw, publicKey);
    assert.equal(check.tags.d, 'example.org');
    assert.equal(check.tags.s, 'ledger');
    assert.equal(check.tags.a, 'rsa-sha256');
    for (const h of ['from', 'subject', 'date', 'message-id', 'list-unsubscribe', 'list-unsubscribe-post']) {
      assert.ok(
        check.signed.includes(h),
        `the signature covers ${h} (RFC 8058 wants both List-Unsubscribe headers signed)`,
      );
    }
    assert.ok(check.bodyHashOk, 'bh= matches the body');
    assert.ok(check.signatureOk, 'b= verifies with the public key');
  });
});

describe('a misconfigured relay never destroys a list (promise 9)', () => {
  const SES_SANDBOX = {
    code: 554,
    message:
      '5.7.1 Message rejected: Email address is not verified. The following identities failed the check: reader@example.com',
  };

  /** Every reader's standing is as it was: active, no bounce counted. */
  function assertNobodyBlamed(env: Env, subs: Subscriber[]): void {
    for (const s of subs) {
      const now = env.app.store.subscribers.get(s.id)!;
      assert.deepEqual(
        [now.status, now.hardBounces],
        ['active', 0],
        `${s.email} is not blamed for the relay's refusal`,
      );
    }
  }

  it('a relay refusing every message at DATA by policy (SES sandbox) pauses the run at once: nothing failed, nothing bounced, --resume sends all', async () => {
    const env = await setup({ delivery: { bounceLimit: 1 } });
    const subs = env.subscribe(...emails('reader', 60));
    let refusals = 0;
    env.sink.dataRule = () => (refusals++, SES_SANDBOX);
    const first = await env.command();
    assert.equal(first.code, 2, first.lines.join(' | '));
    assert.match(
      first.lines.join('\n'),
      /needs you: the relay refused a message by policy \(554 5\.7\.1 Message rejected: Email address is not verified/,
    );
    assert.ok(
      refusals <= sendConcurrency(env.app.config),
      `stopped after the messages in flight, not the whole list: ${refusals} refused`,
    );
    const counts = env.app.store.deliveries.countByStatus();
    assert.deepEqual(
      [counts.failed, counts.sent, counts.sending],
      [0, 0, 0],
      'every refused delivery is back in the queue',
    );
    assertNobodyBlamed(env, subs);
    const run = env.app.store.runs.unfinished()!;
    assert.deepEqual([run.status, run.needsOperator], ['paused', true]);
    assert.match(run.reason ?? '', /by policy/, 'the reason is kept for "status"');
    assert.match(
      statusReport(env.app),
      /^Needs you: {5}run #1 is paused: the relay refused a message by policy \(554 5\.7\.1/m,
    );

    env.sink.dataRule = undefined;
    const resumed = await env.command({ resume: true });
    assert.equal(resumed.code, 0, resumed.lines.join(' | '));
    for (const [e, got] of receivedBy(
      env.sink,
      subs.map((s) => s.email),
    ))
      assert.deepEqual(got, [1], e);
  });

  it('"Relay access denied" at RCPT over three runs bounces nobody; once fixed, every reader gets the installment', async () => {
    const env = await setup();
    const subs = env.subscribe(...emails('reader', 12));
    env.sink.rcptRule = () => ({ code: 554, message: '5.7.1 <reader@example.com>: Relay access denied' });
    for (let i = 0; i < 3; i++) {
      const r = await env.command(i === 0 ? {} : { resume: true });
      assert.equal(r.code, 2, `run ${i + 1} pauses and exits non-zero: ${r.lines.join(' | ')}`);
      assert.match(r.lines.join('\n'), /Relay access denied/);
    }
    assertNobodyBlamed(env, subs);
    assert.equal(env.app.store.deliveries.countByStatus().failed, 0);
    env.sink.rcptRule = undefined;
    const fixed = await env.command({ resume: true });
    assert.equal(fixed.code, 0, fixed.lines.join(' | '));
    assert.match(fixed.lines.join('\n'), /sent 12, failed 0/);
  });

  it('delivery.breakerThreshold refusals alike in a row pause the run and put those deliveries back; a few refusals among successes are failures as before', async () => {
    const env = await setup({ delivery: { breakerThreshold: 5 } });
    const subs = env.subscribe(...emails('reader', 30));
    env.sink.dataRule = () => ({ code: 552, message: '5.3.4 Message size exceeds fixed limit' });
    const storm = await env.command();
    assert.equal(storm.code, 2, storm.lines.join(' | '));
    assert.match(
      storm.lines.join('\n'),
      /the relay refused 5 messages in a row alike \(552 5\.3\.4 Message size exceeds fixed limit\)/,
    );
    assert.deepEqual(
      [env.app.store.deliveries.countByStatus().failed, env.app.store.deliveries.countByStatus().sent],
      [0, 0],
    );
    assertNobodyBlamed(env, subs);

    // Two readers' own refusals among accepted mail are theirs: failed, and counted as bounces.
    const bad = new Set([subs[3]!.email, subs[17]!.email]);
    env.sink.dataRule = undefined;
    env.sink.rcptRule = (address) => (bad.has(address) ? { code: 550, message: '5.1.1 No such user' } : undefined);
    const resumed = await env.command({ resume: true });
    assert.equal(resumed.code, 1, resumed.lines.join(' | '));
    assert.match(resumed.lines.join('\n'), /sent 28, failed 2/);
    for (const s of subs)
      assert.equal(env.app.store.subscribers.get(s.id)!.hardBounces, bad.has(s.email) ? 1 : 0, s.email);
  });

  it('a run stopped part-way through a streak of refusals bounces nobody: those deliveries go back to the queue', async () => {
    const env = await setup({ delivery: { bounceLimit: 1 } });
    const subs = env.subscribe(...emails('reader', 12));
    env.sink.rcptRule = () => ({ code: 550, message: '5.1.1 No such user' });
    const abort = new AbortController();
    const run = await sendRun(env.ctx, { signal: abort.signal, onProgress: (c) => c.failed >= 3 && abort.abort() });
    assert.equal(run.status, 'paused');
    assertNobodyBlamed(env, subs);
    assert.equal(
      env.app.store.deliveries.countByStatus().failed,
      0,
      'the refusals of an unfinished streak are not final',
    );
  });

  it('a reader whose stored address cannot be a header fails alone; the run goes on', async () => {
    const env = await setup();
    const [ok1, bad, ok2] = env.subscribe('ok1@example.com', 'bad@example.com', 'ok2@example.com');
    // A row written before addresses were checked, or by hand.
    env.app.store.db
      .prepare('UPDATE subscribers SET email = ? WHERE id = ?')
      .run('bad@example.com\r\nBcc: x@example.com', bad!.id);
    const run = await sendRun(env.ctx);
    assert.deepEqual([run.status, run.sent, run.failed], ['finished', 2, 1]);
    assert.equal(env.app.store.deliveries.get(bad!.id, 1)!.status, 'failed');
    assert.deepEqual([env.sink.to(ok1!.email).length, env.sink.to(ok2!.email).length], [1, 1]);
    assert.equal(env.sink.received.filter((r) => r.to.includes('x@example.com')).length, 0);
  });

  it("send --retry-failed queues a run's failed deliveries again once the cause is fixed, and sends only those", async () => {
    const env = await setup();
    const subs = env.subscribe(...emails('reader', 10));
    const full = new Set([subs[1]!.email, subs[6]!.email]);
    env.sink.rcptRule = (address) => (full.has(address) ? { code: 552, message: '5.2.2 Mailbox full' } : undefined);
    const first = await env.command();
    assert.equal(first.code, 1);
    assert.match(first.lines.join('\n'), /sent 8, failed 2/);
    // Sending the same installment again does not pick them up: failed is final until the operator says so.
    assert.match((await env.command({ installment: 1 })).lines.join('\n'), /sent 0, failed 0/);

    const [late] = env.subscribe('late@example.com');
    env.sink.rcptRule = undefined;
    const retried = await env.command({ retryFailed: true });
    assert.equal(retried.code, 0, retried.lines.join(' | '));
    assert.match(retried.lines.join('\n'), /sent 2, failed 0/);
    assert.equal(env.sink.to(late!.email).length, 0, 'a reader who joined since is not sent the old installment');
    for (const [e, got] of receivedBy(
      env.sink,
      subs.map((s) => s.email),
    ))
      assert.deepEqual(got, [1], e);
    await assert.rejects(
      sendRun(env.ctx, { retryFailed: true }),
      (err: Error) => err instanceof UserError && /no run has failed deliveries/.test(err.message),
    );
  });

  it('a sender that lost its lock to another process (frozen past the staleness) stops before its next claim', async () => {
    const env = await setup();
    env.subscribe(...emails('reader', 200));
    const { transport } = env.ctx;
    let handedOver = 0;
    env.ctx.transport = beforeEachSend(transport, () => {
      handedOver++;
      // Another sender decides this one is dead and takes the lock, as after a long SIGSTOP.
      if (handedOver === 3)
        env.app.store.meta.set(
          'send_lock',
          JSON.stringify({
            owner: 'someone-else',
            pid: 1,
            host: 'elsewhere',
            since: new Date().toISOString(),
            heartbeat: Date.now(),
          }),
        );
    });
    await assert.rejects(
      sendRun(env.ctx),
      (err: Error) => err instanceof UserError && /another process took over the send lock/.test(err.message),
    );
    assert.ok(
      handedOver <= 3 + sendConcurrency(env.app.config),
      `only messages already claimed went out after the takeover: ${handedOver}`,
    );
    assert.equal(env.sink.count, handedOver);
    assert.equal(env.app.store.runs.lockHolder()?.owner, 'someone-else', 'the new holder keeps its lock');
  });
});

describe('Message-IDs', () => {
  it('differ between two databases sending the same story to the same address, reveal no row id, and stay the same on a retry', async () => {
    const a = await setup();
    const b = await setup();
    const [ra] = a.subscribe('same@example.com');
    const [rb] = b.subscribe('same@example.com');
    assert.equal(ra!.id, rb!.id, 'the same row id in both databases');
    await sendRun(a.ctx);
    await sendRun(b.ctx);
    const idA = (await a.sink.parse(a.sink.received[0]!)).messageId!;
    const idB = (await b.sink.parse(b.sink.received[0]!)).messageId!;
    assert.notEqual(idA, idB, 'a second serial (or install) is not dropped as a duplicate of the first');
    const [kind, number, reader, story] = idA.slice(1).split('.');
    assert.deepEqual([kind, number, story], ['installment', '1', 'the-lamplighter-s-ledger']);
    assert.match(reader!, /^[A-Za-z0-9]{12}$/, 'an opaque reader part, not the row id');
    assert.equal(idA, a.runtime.ids.installment(ra!, 1), 'derived again from the same reader, it is the same id');
    const [other] = a.subscribe('other@example.com');
    assert.notEqual(a.runtime.ids.installment(other!, 1), idA);
  });
});

/** Just enough of RFC 6376 (relaxed/relaxed, rsa-sha256) to check a signature with node:crypto. */
function verifyDkim(
  raw: Buffer,
  publicKey: KeyObject,
): { tags: Record<string, string>; signed: string[]; bodyHashOk: boolean; signatureOk: boolean } {
  const text = raw.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  const headers = text
    .slice(0, split)
    .split(/\r\n(?![ \t])/)
    .map((h) => ({ name: h.slice(0, h.indexOf(':')), value: h.slice(h.indexOf(':') + 1) }));
  const relaxedHeader = (name: string, value: string) =>
    `${name.toLowerCase().trim()}:${value
      .replace(/\r\n/g, '')
      .replace(/[ \t]+/g, ' ')
      .trim()}`;

  const sig = headers.find((h) => h.name.toLowerCase() === 'dkim-signature');
  assert.ok(sig, 'a DKIM-Signature header');
  const tags = Object.fromEntries(
    sig.value
      .replace(/\s+/g, '')
      .split(';')
      .filter(Boolean)
      .map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]),
  );
  assert.equal(tags.c, 'relaxed/relaxed');

  const lines = text
    .slice(split + 4)
    .split('\r\n')
    .map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (lines.length && lines.at(-1) === '') lines.pop();
  const body = lines.length ? lines.join('\r\n') + '\r\n' : '';
  const bodyHashOk = createHash('sha256').update(body, 'latin1').digest('base64') === tags.bh;

  const signed = (tags.h ?? '').toLowerCase().split(':');
  const used = new Set<number>();
  let data = '';
  for (const name of signed) {
    // Repeated names are taken from the bottom up; a name with no (more) instances signs nothing.
    const i = headers.findLastIndex((h, k) => !used.has(k) && h.name.toLowerCase().trim() === name);
    if (i < 0) continue;
    used.add(i);
    data += relaxedHeader(headers[i]!.name, headers[i]!.value) + '\r\n';
  }
  data += relaxedHeader(sig.name, sig.value.replace(/(^|;)(\s*b\s*=)[^;]*/, '$1$2'));
  const signatureOk = verify('sha256', Buffer.from(data, 'latin1'), publicKey, Buffer.from(tags.b ?? '', 'base64'));
  return { tags, signed, bodyHashOk, signatureOk };
}
