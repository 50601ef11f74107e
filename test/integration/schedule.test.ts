// The schedule decides when; a tick sends exactly what `feuilleton send` sends. Time is an
// injected clock and ticks are fired through node-cron's own task API or Scheduler.tick:
// nothing here waits for a real cron time.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { existsSync, writeFileSync } from 'node:fs';
import { afterEach, describe, test } from 'node:test';
import { pino, type Logger } from 'pino';
import type { App } from '../../src/app.ts';
import { ConfigError, loadConfig, PACKAGE_ROOT, type Config } from '../../src/config.ts';
import { statusData, statusReport } from '../../src/commands/status.ts';
import { SenderBusyError, sendRun } from '../../src/deliver/send.ts';
import { listOutbox } from '../../src/deliver/transport.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { Scheduler } from '../../src/schedule.ts';
import { Store } from '../../src/store/index.ts';
import { LOCK_STALE_MS, type LockHolder } from '../../src/store/runs.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { generatedStory, makeProject, type Project } from '../helpers/project.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

/** Mondays and Thursdays at 07:00 in Paris: 06:00Z in winter, 05:00Z in summer. */
const PARIS = { enabled: true, cron: '0 7 * * 1,4', timezone: 'Europe/Paris', catchUp: true };

interface Harness {
  project: Project;
  app: App;
  runtime: Runtime;
  logs: string[];
  log: Logger;
  clock: { now: Date };
  scheduler(config?: Config): Scheduler;
  subscribe(email: string): number;
  mail(): Mail[];
}

interface Mail {
  to: string;
  kind: 'installment' | 'the-end';
  installment?: number;
}

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (open.length) await open.pop()!();
});

function harness(settings: Record<string, unknown> = {}, paragraphs = 14): Harness {
  const project = makeProject({
    story: generatedStory(paragraphs),
    settings: { split: { targetWords: 150 }, ...settings },
  });
  const app = project.open();
  const logs: string[] = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => void logs.push((JSON.parse(line) as { msg: string }).msg) },
  );
  const runtime = createRuntime(app, log);
  const clock = { now: new Date('2026-11-16T08:00:00Z') };
  const schedulers: Scheduler[] = [];
  open.push(async () => {
    for (const s of schedulers) await s.stop();
    runtime.close();
    project.cleanup();
  });
  return {
    project,
    app,
    runtime,
    logs,
    log,
    clock,
    scheduler(config = app.config) {
      const send = { ...runtime.send, config };
      const s = new Scheduler({ send, meta: runtime.app.store.meta, log, clock: () => clock.now });
      schedulers.push(s);
      return s;
    },
    subscribe: (email) => app.store.subscribers.create({ email, status: 'active' }).id,
    mail: () =>
      listOutbox(app.config.paths.outbox, 100_000).map((m) => {
        const inst = /^<installment\.(\d+)\./.exec(m.messageId);
        if (inst) return { to: m.to, kind: 'installment', installment: Number(inst[1]) } as const;
        assert.match(m.messageId, /^<the-end\./);
        return { to: m.to, kind: 'the-end' } as const;
      }),
  };
}

const installmentsTo = (mail: Mail[], to: string): number[] =>
  mail
    .filter((m) => m.to === to && m.kind === 'installment')
    .map((m) => m.installment!)
    .sort((a, b) => a - b);

describe('ticks send what "feuilleton send" sends', () => {
  test('broadcast: each tick sends the next unpublished installment to every active subscriber, and only to them', async () => {
    const h = harness();
    const readers = ['ada@example.org', 'bo@example.org', 'cy@example.org'];
    for (const r of readers) h.subscribe(r);
    h.app.store.subscribers.create({ email: 'pending@example.org', status: 'pending' });
    h.app.store.subscribers.unsubscribe(h.subscribe('gone@example.org'));
    const s = h.scheduler();

    const first = await s.tick('scheduled');
    assert.equal(first.status, 'sent');
    assert.equal(first.status === 'sent' && first.summary.installment, 1);
    assert.deepEqual(
      h.app.store.installments.published().map((i) => i.number),
      [1],
    );
    assert.deepEqual(new Set(h.mail().map((m) => m.to)), new Set(readers));
    for (const r of readers) assert.deepEqual(installmentsTo(h.mail(), r), [1]);

    // The next tick comes from node-cron itself, through its task API.
    const second = (await s.task.execute()) as Awaited<ReturnType<Scheduler['tick']>>;
    assert.equal(second.status === 'sent' && second.summary.installment, 2);
    for (const r of readers) assert.deepEqual(installmentsTo(h.mail(), r), [1, 2]);
    assert.equal(h.mail().length, 6);
    assert.equal(h.app.store.runs.latest()?.kind, 'scheduled');
    assert.ok(
      h.logs.some((l) => /^scheduled run: Run \d+ \(installment 2\): finished\.$/.test(l)),
      h.logs.join('\n'),
    );
  });

  test('paced: each tick sends every due reader their own next installment, and the public calendar moves by one', async () => {
    const h = harness({ mode: 'paced' }, 24);
    assert.ok(h.app.store.installments.count().total >= 5);
    h.subscribe('new@example.org');
    const ahead = h.subscribe('ahead@example.org');
    h.app.store.subscribers.advance(ahead, 2);
    const s = h.scheduler();

    assert.equal((await s.tick('scheduled')).status, 'sent');
    assert.deepEqual(installmentsTo(h.mail(), 'new@example.org'), [1]);
    assert.deepEqual(installmentsTo(h.mail(), 'ahead@example.org'), [3]);
    assert.deepEqual(
      h.app.store.installments.published().map((i) => i.number),
      [1],
    );

    await s.task.execute();
    assert.deepEqual(installmentsTo(h.mail(), 'new@example.org'), [1, 2]);
    assert.deepEqual(installmentsTo(h.mail(), 'ahead@example.org'), [3, 4]);
    assert.deepEqual(
      h.app.store.installments.published().map((i) => i.number),
      [1, 2],
    );
    assert.equal(h.app.store.subscribers.byEmail('ahead@example.org')?.position, 4);
  });
});

describe('one sender at a time', () => {
  test('while another connection holds the lock, a tick is skipped with a log line, sendRun refuses, and the CLI exits non-zero', async () => {
    const h = harness();
    h.subscribe('ada@example.org');
    const other = Store.open(h.app.config.paths.db);
    open.push(() => other.close());
    assert.deepEqual(other.runs.acquireLock('another-sender'), { ok: true });

    const s = h.scheduler();
    assert.deepEqual(await s.tick('scheduled'), { status: 'busy' });
    const warning = h.logs.find((l) => l.startsWith('scheduled run skipped:'));
    assert.match(
      warning ?? '',
      new RegExp(`another send is running \\(process ${process.pid} on ${hostname()}, since `),
    );
    await assert.rejects(sendRun(h.runtime.send), SenderBusyError);
    assert.deepEqual(statusData(h.app).runInProgress?.pid, process.pid);

    const cli = await runCli(['send', '-c', h.project.configPath]);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(
      cli.stderr,
      new RegExp(
        `^feuilleton: another send is running \\(process ${process.pid} on .+\\); wait for it to finish and check "feuilleton status"\\n$`,
      ),
    );

    assert.deepEqual(h.mail(), [], 'nothing was sent while the lock was held');
    assert.equal(h.app.store.runs.latest(), undefined, 'no run was recorded');
    assert.equal(h.app.store.installments.count().published, 0);

    other.runs.releaseLock('another-sender');
    assert.equal((await s.tick('scheduled')).status, 'sent');
    assert.deepEqual(installmentsTo(h.mail(), 'ada@example.org'), [1]);
  });

  test('two ticks at once: the first sends, the second is skipped', async () => {
    const h = harness();
    for (const r of ['ada@example.org', 'bo@example.org']) h.subscribe(r);
    const s = h.scheduler();
    const [a, b] = await Promise.all([s.tick('scheduled'), s.task.execute() as ReturnType<Scheduler['tick']>]);
    assert.equal(a.status, 'sent');
    assert.deepEqual(b, { status: 'busy' });
    assert.deepEqual(
      h.mail().map((m) => m.installment),
      [1, 1],
    );
  });

  test('a lock left by a killed sender on this machine does not block the next one', async () => {
    const h = harness();
    h.subscribe('ada@example.org');
    const script = path.join(h.project.dir, 'hold-lock.mts');
    writeFileSync(
      script,
      `import { Store } from ${JSON.stringify(pathToFileURL(path.join(PACKAGE_ROOT, 'src/store/index.ts')).href)};
const store = Store.open(process.argv[2]);
process.stdout.write(store.runs.acquireLock('crashed-sender').ok ? 'locked\\n' : 'busy\\n');
setInterval(() => undefined, 60_000);
`,
    );
    const holder = spawn(process.execPath, ['--import', 'tsx', script, h.app.config.paths.db], {
      cwd: PACKAGE_ROOT,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [first] = (await once(holder.stdout, 'data')) as [Buffer];
    assert.equal(first.toString(), 'locked\n');

    const s = h.scheduler();
    assert.equal(statusData(h.app).runInProgress?.pid, holder.pid);
    assert.deepEqual(await s.tick('scheduled'), { status: 'busy' }, 'a live holder is respected');

    holder.kill('SIGKILL');
    await once(holder, 'exit');
    assert.equal(statusData(h.app).runInProgress, null, 'status does not report a dead holder as a run in progress');
    assert.match(statusReport(h.app), /^In progress:\s+no$/m);
    assert.equal((await s.tick('scheduled')).status, 'sent');
    assert.deepEqual(installmentsTo(h.mail(), 'ada@example.org'), [1]);
    assert.equal(h.app.store.runs.lockHolder(), undefined, 'the lock was taken over, then released');
  });

  test('a lock from another machine is trusted while its heartbeat is fresh, and taken over once it is stale', async () => {
    const h = harness();
    h.subscribe('ada@example.org');
    const s = h.scheduler();
    const elsewhere = (heartbeat: number): string =>
      JSON.stringify({
        owner: 'remote',
        pid: 4242,
        host: 'other-host.invalid',
        since: new Date(heartbeat).toISOString(),
        heartbeat,
      } satisfies LockHolder);

    h.app.store.meta.set('send_lock', elsewhere(Date.now() - 1000));
    assert.deepEqual(await s.tick('scheduled'), { status: 'busy' });
    assert.equal(statusData(h.app).runInProgress?.host, 'other-host.invalid');

    h.app.store.meta.set('send_lock', elsewhere(Date.now() - LOCK_STALE_MS - 5000));
    assert.equal(statusData(h.app).runInProgress, null);
    assert.equal((await s.tick('scheduled')).status, 'sent');
    assert.deepEqual(installmentsTo(h.mail(), 'ada@example.org'), [1]);
  });
});

describe('missed runs', () => {
  test("a run of readers' own calendars cut short by a crash is finished at start, and sends no story installment off schedule", async () => {
    const h = harness({ schedule: PARIS });
    h.subscribe('ada@example.org');
    // Monday: the scheduler has run before, so nothing counts as missed on Tuesday.
    h.clock.now = new Date('2026-11-16T08:00:00Z');
    const a = h.scheduler();
    await a.start();
    await a.stop();
    // What a crash part-way through a due run leaves: that run open, no lock holder alive.
    h.app.store.runs.start('scheduled', JSON.stringify({ mode: 'broadcast', installment: null, due: true }), {
      planned: 0,
      sent: 0,
      failed: 0,
      retried: 0,
      skipped: 0,
      possibleDuplicates: 0,
    });
    // Tuesday, between the Monday and Thursday runs.
    h.clock.now = new Date('2026-11-17T10:00:00Z');
    const b = h.scheduler();
    await b.start();
    await b.stop();
    assert.equal(h.app.store.runs.unfinished(), undefined, 'the interrupted run is finished');
    assert.deepEqual(installmentsTo(h.mail(), 'ada@example.org'), [], 'no installment before Thursday');
  });

  test('start() after a missed scheduled time sends once, logs it, and a later start() does not catch up again', async () => {
    const h = harness({ schedule: PARIS });
    h.subscribe('ada@example.org');

    // First start, Monday 2026-11-16 09:00 Paris: nothing can have been missed yet.
    h.clock.now = new Date('2026-11-16T08:00:00Z');
    const a = h.scheduler();
    assert.equal(await a.start(), undefined);
    assert.equal(a.task.getStatus(), 'idle', 'the cron task is armed');
    await a.stop();
    assert.deepEqual(h.mail(), []);

    // Down over Thursday 07:00 Paris (06:00Z); back at 09:00.
    h.clock.now = new Date('2026-11-19T08:00:00Z');
    const b = h.scheduler();
    const caughtUp = await b.start();
    assert.equal(caughtUp?.status, 'sent');
    assert.ok(
      h.logs.includes(
        'missed the scheduled run of 2026-11-19T06:00:00.000Z while stopped: catching up with one send now',
      ),
      h.logs.join('\n'),
    );
    assert.equal(h.app.store.runs.latest()?.kind, 'catch-up');
    assert.deepEqual(installmentsTo(h.mail(), 'ada@example.org'), [1]);
    await b.stop();

    // Restarted an hour later: that missed run was made up for already.
    h.clock.now = new Date('2026-11-19T09:00:00Z');
    const logsBefore = h.logs.length;
    const c = h.scheduler();
    assert.equal(await c.start(), undefined);
    await c.stop();
    assert.deepEqual(installmentsTo(h.mail(), 'ada@example.org'), [1]);
    assert.ok(!h.logs.slice(logsBefore).some((l) => l.startsWith('missed')), h.logs.slice(logsBefore).join('\n'));

    // Down across the next Monday too: one catch-up, not one per missed time.
    h.clock.now = new Date('2026-11-27T08:00:00Z');
    const d = h.scheduler();
    assert.equal((await d.start())?.status, 'sent');
    await d.stop();
    assert.ok(
      h.logs.includes(
        'missed the scheduled run of 2026-11-26T06:00:00.000Z while stopped: catching up with one send now',
      ),
    );
    assert.deepEqual(installmentsTo(h.mail(), 'ada@example.org'), [1, 2]);
  });

  test('with schedule.catchUp off the missed run is skipped, logged, and not caught up later', async () => {
    const h = harness({ schedule: { ...PARIS, catchUp: false } });
    h.subscribe('ada@example.org');
    h.clock.now = new Date('2026-11-16T08:00:00Z');
    const a = h.scheduler();
    await a.start();
    await a.stop();

    h.clock.now = new Date('2026-11-19T08:00:00Z');
    const b = h.scheduler();
    assert.equal(await b.start(), undefined);
    await b.stop();
    assert.ok(
      h.logs.includes(
        'missed the scheduled run of 2026-11-19T06:00:00.000Z while stopped; schedule.catchUp is off, so it is skipped',
      ),
      h.logs.join('\n'),
    );
    assert.deepEqual(h.mail(), []);
    assert.equal(h.app.store.runs.latest(), undefined);
  });

  test('a disabled schedule neither catches up nor arms its timer', async () => {
    const h = harness({ schedule: PARIS });
    h.subscribe('ada@example.org');
    const a = h.scheduler();
    await a.start();
    await a.stop();

    // Restarted with the schedule switched off in the config.
    h.clock.now = new Date('2026-11-19T08:00:00Z');
    const b = h.scheduler({ ...h.app.config, schedule: { ...h.app.config.schedule, enabled: false } });
    assert.equal(await b.start(), undefined);
    assert.equal(b.task.getStatus(), 'stopped');
    assert.deepEqual(h.mail(), []);
  });

  test('stop() during the catch-up send leaves the timer unarmed', async () => {
    const h = harness({ schedule: PARIS });
    h.subscribe('ada@example.org');
    const a = h.scheduler();
    await a.start();
    await a.stop();

    h.clock.now = new Date('2026-11-19T08:00:00Z');
    const b = h.scheduler();
    const starting = b.start();
    await b.stop();
    assert.equal((await starting)?.status, 'sent', 'the catch-up send had begun and checkpointed');
    assert.equal(b.task.getStatus(), 'destroyed', 'no timer armed after stop(): the task is gone, not idle or running');
  });

  test('missedSince follows the time zone across a DST change and honours a seconds field', () => {
    const h = harness({ schedule: PARIS });
    const s = h.scheduler();
    // 2026-03-29: Paris moves to summer time, so Monday 07:00 is 05:00Z.
    assert.equal(
      s.missedSince(new Date('2026-03-26T06:30:00Z'), new Date('2026-03-30T12:00:00Z'))?.toISOString(),
      '2026-03-30T05:00:00.000Z',
    );
    assert.equal(
      s.missedSince(new Date('2026-03-30T05:00:00Z'), new Date('2026-03-30T12:00:00Z')),
      null,
      'the tick itself is not a missed run',
    );
    assert.equal(s.missedSince(new Date('2026-03-27T00:00:00Z'), new Date('2026-03-30T04:59:00Z')), null);

    Object.assign(h.app.config.schedule, { cron: '30 0 7 * * *', timezone: 'UTC' });
    const t = h.scheduler();
    assert.equal(
      t.missedSince(new Date('2026-03-26T08:00:00Z'), new Date('2026-03-27T08:00:00Z'))?.toISOString(),
      '2026-03-27T07:00:30.000Z',
    );
  });
});

describe("the story's end", () => {
  test('broadcast: once every installment is published, ticks send nothing and status says the story is complete', async () => {
    const h = harness({ schedule: PARIS }, 8);
    h.subscribe('ada@example.org');
    const total = h.app.store.installments.count().total;
    assert.ok(total >= 2 && total <= 6, `${total} installments`);
    const s = h.scheduler();
    for (let n = 1; n < total; n++) assert.equal((await s.tick('scheduled')).status, 'sent');
    assert.match(statusReport(h.app), /next run \d{4}-\d\d-\d\dT/, 'the last installment is still to come');
    assert.equal((await s.tick('scheduled')).status, 'sent');

    const sentBefore = h.mail().length;
    assert.deepEqual(await s.tick('scheduled'), { status: 'complete' });
    assert.deepEqual(await s.task.execute(), { status: 'complete' });
    assert.equal(h.mail().length, sentBefore);
    // Every installment once, then the one "The End" the last installment's run queued.
    assert.deepEqual(
      h
        .mail()
        .map((m) => m.kind)
        .reverse(), // the outbox lists the newest first
      [...Array<string>(total).fill('installment'), 'the-end'],
    );
    assert.ok(h.logs.includes(`scheduled run: the story is complete: all ${total} installments are published`));

    const status = statusData(h.app);
    assert.equal(status.installments.complete, true);
    assert.equal(status.nextScheduledRun, null);
    const report = statusReport(h.app);
    assert.match(report, new RegExp(`^Installments:\\s+${total} of ${total} published — the story is complete$`, 'm'));
    assert.match(report, /^Schedule:\s+"0 7 \* \* 1,4" \(Europe\/Paris\); next run none: the story is complete$/m);
  });

  test('paced: a reader who receives the last installment gets exactly one "The End" and is marked finished', async () => {
    const h = harness({ mode: 'paced' }, 8);
    const total = h.app.store.installments.count().total;
    assert.ok(total >= 2 && total <= 6, `${total} installments`);
    const early = h.subscribe('early@example.org');
    const late = h.subscribe('late@example.org');
    h.app.store.subscribers.advance(early, total - 1);
    const s = h.scheduler();

    const first = await s.tick('scheduled');
    assert.equal(first.status === 'sent' && first.summary.finishedReaders, 1);
    assert.ok(h.app.store.subscribers.get(early)?.finishedAt, 'early is marked finished');
    assert.equal(h.app.store.subscribers.get(late)?.finishedAt, null);
    assert.ok(h.logs.includes('scheduled run: 1 reader(s) finished the story and got "The End"'), h.logs.join('\n'));

    for (let n = 2; n <= total + 2; n++) await s.tick('scheduled');
    const mail = h.mail();
    assert.deepEqual(installmentsTo(mail, 'early@example.org'), [total]);
    assert.deepEqual(
      installmentsTo(mail, 'late@example.org'),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    for (const who of ['early@example.org', 'late@example.org']) {
      assert.equal(mail.filter((m) => m.to === who && m.kind === 'the-end').length, 1, `${who} got "The End" once`);
    }
    assert.ok(h.app.store.subscribers.get(late)?.finishedAt);

    const last = await s.tick('scheduled');
    assert.equal(last.status === 'sent' && last.summary.sent + last.summary.finishedReaders, 0, 'nothing more to send');
    assert.equal(h.mail().length, mail.length);
  });
});

describe('schedule config', () => {
  const cases = [
    {
      key: 'schedule.cron',
      schedule: { cron: '0 7 * * 9' },
      detail: /schedule\.cron "0 7 \* \* 9" is not a cron expression \(9 is a invalid expression for week day\)/,
    },
    {
      key: 'schedule.cron',
      schedule: { cron: 'every tuesday' },
      detail: /schedule\.cron "every tuesday" is not a cron expression \(expected 5 or 6 fields but got 2\)/,
    },
    {
      key: 'schedule.timezone',
      schedule: { timezone: 'Mars/Olympus' },
      detail: /schedule\.timezone "Mars\/Olympus" is not a known time zone; use an IANA name such as Europe\/Paris/,
    },
  ];
  for (const c of cases) {
    test(`${c.key}: ${JSON.stringify(Object.values(c.schedule)[0])} is a config error naming the file and the key`, () => {
      const project = makeProject({ settings: { schedule: { enabled: true, ...c.schedule } } });
      open.push(() => project.cleanup());
      assert.throws(
        () => loadConfig({ configPath: project.configPath, env: {} }),
        (err: unknown) =>
          err instanceof ConfigError && err.message.startsWith(`${project.configPath}: `) && c.detail.test(err.message),
      );
    });
  }

  test('the CLI stops on a bad schedule before opening the database, with one line naming file and key', async () => {
    const project = makeProject({
      settings: { schedule: { enabled: true, cron: '61 7 * * *', timezone: 'Europe/Paris' } },
    });
    open.push(() => project.cleanup());
    const r = await runCli(['status', '-c', project.configPath]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `feuilleton: ${project.configPath}: schedule.cron "61 7 * * *" is not a cron expression (61 is a invalid expression for minute); write minute hour day-of-month month day-of-week, such as "0 7 * * 1,4"\n`,
    );
    assert.equal(existsSync(path.join(project.dir, 'data', 'feuilleton.db')), false, 'no database was created');
  });
});

describe('feuilleton status', () => {
  test('story, installments, subscribers by status, last run, next run, failed and paused deliveries, run in progress', async () => {
    const sink = new SmtpSink();
    await sink.start();
    open.push(() => sink.stop());
    sink.rcptRule = (address) =>
      address === 'nobody@example.org'
        ? { code: 550, message: '5.1.1 no such user' }
        : address === 'later@example.org'
          ? { code: 451, message: '4.3.0 try again later' }
          : undefined;
    const h = harness({ schedule: PARIS, mail: { smtpUrl: sink.url }, delivery: { maxAttempts: 1 } });
    for (const r of ['ada@example.org', 'bo@example.org', 'nobody@example.org', 'later@example.org']) h.subscribe(r);
    h.app.store.subscribers.create({ email: 'pending@example.org', status: 'pending' });
    h.app.store.subscribers.create({ email: 'bounced@example.org', status: 'bounced' });
    h.app.store.subscribers.unsubscribe(h.subscribe('gone@example.org'));
    const total = h.app.store.installments.count().total;

    const before = statusData(h.app);
    assert.equal(before.lastRun, null);
    assert.match(statusReport(h.app), /^Last run:\s+none yet$/m);

    const s = h.scheduler();
    const paused = await s.tick('scheduled');
    assert.equal(paused.status === 'sent' && paused.summary.status, 'paused');

    const status = statusData(h.app);
    assert.deepEqual(status.story, {
      title: 'A Generated Tale',
      author: 'Test Author',
      file: h.app.story.file,
      mode: 'broadcast',
    });
    assert.deepEqual(status.installments, { total, published: 1, complete: false });
    assert.deepEqual(status.subscribers, { pending: 1, active: 4, unsubscribed: 1, bounced: 1 });
    assert.equal(status.deliveries.sent, 2);
    assert.equal(status.deliveries.failed, 1);
    assert.equal(status.deliveries.queued, 1);
    assert.equal(status.lastRun?.kind, 'scheduled');
    assert.equal(status.lastRun?.status, 'paused');
    assert.deepEqual([status.lastRun?.counts.sent, status.lastRun?.counts.failed], [2, 1]);
    assert.equal(status.runInProgress, null);
    assert.deepEqual(status.needsResume, {
      runId: status.lastRun?.id,
      status: 'paused',
      reason: status.lastRun?.reason,
      needsOperator: false,
    });
    assert.match(
      status.needsResume?.reason ?? '',
      /^mail server unavailable after 1 attempts \(451 4\.3\.0 try again later\)/,
    );

    // Next run: the first Monday or Thursday 07:00 in Paris from now.
    const next = new Date(status.nextScheduledRun!);
    const now = Date.now();
    assert.ok(next.getTime() > now && next.getTime() <= now + 4 * 86_400_000, status.nextScheduledRun ?? 'null');
    assert.match(
      next.toLocaleString('en-GB', {
        timeZone: 'Europe/Paris',
        weekday: 'long',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      }),
      /^(Monday|Thursday)( at)? 07:00:00$/,
    );

    const report = statusReport(h.app);
    for (const line of [
      /^Story:\s+A Generated Tale by Test Author \(broadcast mode\)$/m,
      new RegExp(`^Installments:\\s+1 of ${total} published$`, 'm'),
      /^Subscribers:\s+1 pending, 4 active, 1 unsubscribed, 1 bounced$/m,
      /^Deliveries:\s+2 sent, 1 failed, 1 waiting to be resumed, 0 possible duplicate\(s\)$/m,
      /^Last run:\s+#\d+ scheduled, paused, started \S+: sent 2, failed 1, retried 0, skipped 0$/m,
      /^In progress:\s+no$/m,
      /^Needs resume:\s+run #\d+ is paused; continue it with: feuilleton send --resume$/m,
      new RegExp(`^Schedule:\\s+"0 7 \\* \\* 1,4" \\(Europe/Paris\\); next run ${status.nextScheduledRun}$`, 'm'),
      /^Mail:\s+smtp$/m,
    ]) {
      assert.match(report, line);
    }

    // A sender at work elsewhere shows as a run in progress.
    const other = Store.open(h.app.config.paths.db);
    open.push(() => other.close());
    other.runs.acquireLock('busy-elsewhere');
    const busy = statusData(h.app);
    assert.deepEqual(busy.runInProgress && { pid: busy.runInProgress.pid, host: busy.runInProgress.host }, {
      pid: process.pid,
      host: hostname(),
    });
    assert.equal(busy.needsResume, null);
    assert.match(
      statusReport(h.app),
      new RegExp(`^In progress:\\s+yes \\(process ${process.pid} on ${hostname()}, since \\S+\\)$`, 'm'),
    );
    other.runs.releaseLock('busy-elsewhere');

    // The next tick resumes the paused run: the waiting message goes out, the failed one stays failed.
    sink.rcptRule = (address) =>
      address === 'nobody@example.org' ? { code: 550, message: '5.1.1 no such user' } : undefined;
    const resumed = await s.tick('scheduled');
    assert.equal(resumed.status === 'sent' && resumed.summary.runId, status.lastRun?.id);
    const after = statusData(h.app);
    assert.equal(after.lastRun?.status, 'finished');
    assert.deepEqual([after.deliveries.sent, after.deliveries.failed, after.deliveries.queued], [3, 1, 0]);
    assert.equal(after.needsResume, null);
    assert.equal(sink.to('later@example.org').length, 1);
  });

  test('the CLI prints the same report', async () => {
    const h = harness({ schedule: PARIS });
    h.subscribe('ada@example.org');
    await h.scheduler().tick('scheduled');
    const r = await runCli(['status', '-c', h.project.configPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Installments:\s+1 of \d+ published$/m);
    assert.match(
      r.stdout,
      /^Last run:\s+#1 scheduled, finished, started \S+: sent 1, failed 0, retried 0, skipped 0$/m,
    );
    assert.equal(r.stdout, statusReport(h.app) + '\n');
  });
});
