// Confirmation, welcome and "The End" through the notices ledger (promise 10), and a
// serve that picks up what a crash or a shutdown left: queued emails, an unfinished run.
// Real parts throughout: the server (in this process, or the CLI as its own process for
// kill -9 and SIGTERM), smtp-server on 127.0.0.1, the SQLite file.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { domainToASCII } from 'node:url';
import { afterEach, describe, test } from 'node:test';
import { startServing } from '../../src/commands/serve.ts';
import { NoticeMail } from '../../src/deliver/notice-mail.ts';
import { NoticeSender } from '../../src/deliver/notices.ts';
import { mailOptions, type MailTransport } from '../../src/deliver/transport.ts';
import { createLogger } from '../../src/log.ts';
import { createRuntime } from '../../src/runtime.ts';
import { Store } from '../../src/store/index.ts';
import type { Subscriber } from '../../src/store/subscribers.ts';
import { spawnCli, type CliProcess } from '../helpers/cli.ts';
import { Client } from '../helpers/form-client.ts';
import { freePort } from '../helpers/net.ts';
import { generatedStory, makeProject, type Project } from '../helpers/project.ts';
import { headerValue, SmtpSink } from '../helpers/smtp-sink.ts';

const silent = createLogger({ level: 'silent', pretty: false });
const GREYLISTED = { code: 451, message: '4.7.1 Greylisted, try again later' };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function sinkAndProject(
  settings: Record<string, unknown> = {},
): Promise<{ sink: SmtpSink; project: Project; port: number }> {
  const sink = new SmtpSink();
  await sink.start();
  const port = await freePort();
  const project = makeProject({
    story: generatedStory(14),
    settings: {
      baseUrl: `http://127.0.0.1:${port}`,
      server: { host: '127.0.0.1', port },
      split: { targetWords: 150 },
      mail: { smtpUrl: sink.url, from: 'The Ledger <serial@example.org>' },
      delivery: { backoffBaseMs: 20, backoffMaxMs: 40 },
      ...settings,
    },
  });
  cleanups.push(async () => {
    await sink.stop();
    project.cleanup();
  });
  return { sink, project, port };
}

/** `feuilleton serve` as its own process, resolved once it answers. */
async function serve(project: Project, port: number): Promise<CliProcess> {
  const proc = spawnCli(['--config', project.configPath, 'serve']);
  cleanups.push(() => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  });
  const until = Date.now() + 30_000;
  for (;;) {
    if (proc.child.exitCode !== null) assert.fail(`serve exited early:\n${proc.output()}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) return proc;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) assert.fail(`serve did not answer:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What the ledger holds, read through a connection of the test's own. */
function noticeCounts(project: Project) {
  const store = Store.open(project.config().paths.db);
  try {
    return store.notices.countByStatus();
  } finally {
    store.close();
  }
}

const confirmationsTo = (sink: SmtpSink, address: string) =>
  sink.to(address).filter((r) => /^Subject: Confirm/m.test(r.raw.toString('latin1')));

describe('subscription emails are durable', () => {
  test('a 4xx on the confirmation is retried with backoff until the relay takes it', async () => {
    const { sink, project } = await sinkAndProject();
    sink.rcptRule = (address, attempt) => (address === 'grey@example.org' && attempt <= 2 ? GREYLISTED : undefined);
    const serving = await startServing(project.open(), silent, { host: '127.0.0.1', port: 0 });
    cleanups.push(() => serving.stop());
    assert.equal((await new Client(serving.url).subscribe('grey@example.org')).res.status, 303);
    await sink.waitFor(() => sink.to('grey@example.org').length === 1);
    // The relay's 250 reaches the sender just after the message reaches the relay.
    await serving.runtime.subscriptions.settled();
    const n = serving.runtime.app.store.notices.latestFor(
      serving.runtime.app.store.subscribers.byEmail('grey@example.org')!.id,
    )!;
    assert.deepEqual(
      [n.kind, n.status, n.attempts, n.confirmUrl],
      ['confirm', 'sent', 3, null],
      'sent on the third try; the link is not kept once sent',
    );
  });

  test('a confirmation refused for good does not hold back the reader who asks again a minute later', async () => {
    const { sink, project } = await sinkAndProject();
    sink.rcptRule = (address, attempt) =>
      attempt === 1 ? { code: 550, message: '5.1.1 Mailbox unavailable' } : undefined;
    const serving = await startServing(project.open(), silent, { host: '127.0.0.1', port: 0 });
    cleanups.push(() => serving.stop());
    const client = new Client(serving.url);
    await client.subscribe('typo@example.org');
    await serving.runtime.subscriptions.settled();
    assert.equal(sink.to('typo@example.org').length, 0);
    await client.subscribe('typo@example.org');
    await sink.waitFor(() => confirmationsTo(sink, 'typo@example.org').length === 1);
  });

  test('kill -9 of serve with confirmations still waiting for the relay: the restarted serve sends each once', async () => {
    const { sink, project, port } = await sinkAndProject();
    sink.rcptRule = () => GREYLISTED;
    const first = await serve(project, port);
    const client = new Client(`http://127.0.0.1:${port}/`);
    const readers = ['ann@example.org', 'bo@example.org', 'cy@example.org'];
    for (const r of readers) assert.equal((await client.subscribe(r)).res.status, 303);
    // Tried and refused at least once each: they are waiting out a backoff when the process dies.
    const until = Date.now() + 10_000;
    while (
      readers.some(
        (r) =>
          !sink.received.length && (sink as unknown as { attempts: Map<string, number> }).attempts.get(r) === undefined,
      )
    ) {
      if (Date.now() > until) assert.fail('the confirmations were never tried');
      await new Promise((r) => setTimeout(r, 50));
    }
    first.child.kill('SIGKILL');
    await once(first.child, 'close');
    assert.equal(sink.received.length, 0);

    sink.rcptRule = undefined;
    await serve(project, port);
    await sink.waitFor(() => readers.every((r) => confirmationsTo(sink, r).length === 1), 15_000);
    await new Promise((r) => setTimeout(r, 300));
    for (const r of readers) assert.equal(confirmationsTo(sink, r).length, 1, `${r}: one confirmation, not two`);
    assert.deepEqual(noticeCounts(project), { queued: 0, sending: 0, sent: 3, failed: 0 });
  });

  test('SIGTERM with hundreds of confirmations queued exits within delivery.shutdownGraceSeconds; the restarted serve sends the rest', async () => {
    const READERS = 300;
    const { sink, project, port } = await sinkAndProject({
      delivery: { backoffBaseMs: 20, backoffMaxMs: 40, shutdownGraceSeconds: 1 },
    });
    {
      const app = project.open();
      const runtime = createRuntime(app, silent);
      for (let i = 1; i <= READERS; i++) runtime.subscriptions.request(`reader${i}@example.com`, '127.0.0.1');
      runtime.close();
    }
    assert.equal(noticeCounts(project).queued, READERS, 'queued in the database, nothing held in memory');
    sink.dataDelayMs = 100;
    const first = await serve(project, port);
    await sink.waitFor(() => sink.count >= 10, 20_000);
    const t0 = Date.now();
    first.child.kill('SIGTERM');
    const [code] = (await once(first.child, 'close')) as [number | null];
    const took = Date.now() - t0;
    assert.equal(code, 0, first.output());
    assert.ok(took < 3_000, `stopped ${took} ms after SIGTERM with a 1 s grace`);
    const left = noticeCounts(project);
    assert.ok(left.queued > 0, `still queued after the stop: ${JSON.stringify(left)}`);
    assert.equal(left.queued + left.sending + left.sent, READERS);

    sink.dataDelayMs = 0;
    await serve(project, port);
    const addresses = Array.from({ length: READERS }, (_, i) => `reader${i + 1}@example.com`);
    await sink.waitFor(() => addresses.every((a) => confirmationsTo(sink, a).length >= 1), 30_000);
    const twice = addresses.filter((a) => confirmationsTo(sink, a).length > 1);
    assert.ok(twice.length <= 5, `only a message on the wire at the deadline may go twice: ${twice.length}`);
  });
});

describe('the notices ledger', () => {
  test('a sender whose lease ran out cannot settle the row the next sender took', async () => {
    const { project } = await sinkAndProject();
    const app = project.open();
    cleanups.push(() => app.store.close());
    const sub = app.store.subscribers.create({ email: 'slow@example.org', status: 'pending' });
    app.store.notices.enqueue({
      subscriberId: sub.id,
      kind: 'confirm',
      messageId: '<c.1@example.org>',
      confirmUrl: 'https://x/confirm',
    });
    const t0 = new Date();
    const [first] = app.store.notices.claimDue(t0, 1_000, 10);
    // The first sender is still on the wire when its lease runs out: another takes the row.
    const [second] = app.store.notices.claimDue(new Date(t0.getTime() + 2_000), 1_000, 10);
    assert.deepEqual([first?.attempts, second?.attempts], [1, 2]);
    assert.equal(app.store.notices.markSent(second!), true);
    // The first one's late failure must not put a sent notice back in the queue.
    assert.equal(app.store.notices.retryAt(first!, '421 try later', new Date()), false);
    assert.equal(app.store.notices.markFailed(first!, '550 no'), false);
    assert.equal(app.store.notices.latestFor(sub.id)?.status, 'sent');
  });
});

/** An address as nodemailer writes it in a header: its domain in punycode. */
const asciiDomain = (email: string) => email.replace(/@(.*)$/, (_, domain: string) => `@${domainToASCII(domain)}`);

describe('notices composed once per kind', () => {
  test('each reader gets their own confirmation, welcome and The End, handed to the SMTP pool built', async () => {
    const { sink, project } = await sinkAndProject({ mode: 'paced' });
    const runtime = createRuntime(project.open(), silent);
    cleanups.push(() => runtime.close());
    const { app, links } = runtime;
    let raw = 0;
    const transport: Pick<MailTransport, 'send' | 'sendRaw'> = {
      send: () => assert.fail('composed per reader'),
      sendRaw: (to, bytes, id) => (raw++, runtime.transport.sendRaw!(to, bytes, id)),
    };
    const address = runtime.send.lists.address.bind(runtime.send.lists);
    const notices = new NoticeSender({
      notices: app.store.notices,
      subscribers: app.store.subscribers,
      renderer: runtime.renderer,
      transport,
      ids: runtime.ids,
      address,
      noticeMail: new NoticeMail({ address, options: (mail) => mailOptions(app.config, mail) }),
      config: app.config,
      log: silent,
    });
    const emails = ['ann@example.org', 'leser@bücher.example', `${'long'.repeat(12)}@example.net`];
    const pending = emails.map((e) => app.store.subscribers.create({ email: `new.${e}`, status: 'pending' }));
    const active = emails.map((e) => app.store.subscribers.create({ email: e, status: 'active' }));
    const confirmUrl = (i: number) => links.confirm(`${'t'.repeat(20 * i)}${i}`);
    pending.forEach((sub, i) => notices.confirm(sub, confirmUrl(i)));
    for (const sub of active) notices.welcome(sub);
    for (const sub of active) notices.theEnd(sub);
    await notices.drain();
    await sink.waitFor((r) => r.length === 9);
    assert.equal(raw, 9, 'every notice handed over built');

    const kinds = new Map<Subscriber, readonly string[]>([
      ...pending.map((s) => [s, ['confirm']] as const),
      ...active.map((s) => [s, ['welcome', 'the-end']] as const),
    ]);
    for (const [sub, expected] of kinds) {
      const got = sink.to(sub.email);
      assert.equal(got.length, expected.length, `${sub.email}: ${expected.join(', ')}`);
      for (const r of got) {
        const mail = await sink.parse(r);
        const kind = /^<([a-z-]+)\./.exec(mail.messageId!)![1]!;
        assert.ok(expected.includes(kind), `${sub.email}: ${kind}`);
        assert.equal(headerValue(mail, 'To'), asciiDomain(sub.email));
        const unsubscribe = links.unsubscribe(sub);
        assert.equal(headerValue(mail, 'List-Unsubscribe'), `<${unsubscribe}>`);
        if (kind === 'confirm') {
          const url = confirmUrl(pending.indexOf(sub));
          assert.ok(mail.text!.includes(url) && (mail.html as string).includes(url), `${sub.email}: their own link`);
        } else {
          assert.ok(mail.text!.includes(unsubscribe) && (mail.html as string).includes(unsubscribe), `${sub.email}`);
          if (kind === 'the-end') assert.ok(mail.text!.includes(links.readerToken(sub)), 'their own read token');
        }
      }
    }
  });
});

describe('serve picks up an interrupted run', () => {
  test('a scheduled run cut short by a crash is resumed as soon as serve starts again, not at the next scheduled time', async () => {
    const { sink, project, port } = await sinkAndProject({
      schedule: { enabled: true, cron: '0 7 1 1 *', timezone: 'UTC', catchUp: true },
    });
    const app = project.open();
    const subs = Array.from({ length: 30 }, (_, i) =>
      app.store.subscribers.create({ email: `r${i + 1}@example.com`, status: 'active' }),
    );
    // What a crash part-way through a scheduled run leaves: the run open, its installment published, a few sent.
    app.store.installments.markPublished(1);
    const run = app.store.runs.start('scheduled', JSON.stringify({ mode: 'broadcast', installment: 1 }), {
      planned: 30,
      sent: 0,
      failed: 0,
      retried: 0,
      skipped: 0,
      possibleDuplicates: 0,
    });
    for (const s of subs.slice(0, 5)) {
      const claim = app.store.deliveries.claim(s.id, 1, run.id)!;
      app.store.deliveries.markSent(claim.id, `<before-crash.${s.id}@example.org>`);
    }
    app.store.meta.set('schedule_last_tick', new Date().toISOString());
    app.store.close();

    const proc = await serve(project, port);
    await sink.waitFor(() => sink.received.length === 25, 15_000);
    assert.deepEqual(
      new Set(sink.received.map((r) => r.to[0])),
      new Set(subs.slice(5).map((s) => s.email)),
      'the rest of the run, and only the rest',
    );
    const until = Date.now() + 5_000;
    while (!/resuming it now/.test(proc.output())) {
      if (Date.now() > until) assert.fail(`no log line about the resume:\n${proc.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const store = Store.open(project.config().paths.db);
    try {
      assert.equal(store.runs.get(run.id)!.status, 'finished');
    } finally {
      store.close();
    }
  });
});
