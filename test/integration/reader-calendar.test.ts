// Each reader's own calendar, driven by the real scheduler, store, ledger and outbox with a
// fake clock: cadence, time zones, DST, pause and resume, a slot missed while the server
// was down, broadcast readers at their own pace, catch-up, and what the author sees.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { pino } from 'pino';
import type { App } from '../../src/app.ts';
import { statusData, statusReport } from '../../src/commands/status.ts';
import { sendRest, sendRun } from '../../src/deliver/send.ts';
import { listOutbox } from '../../src/deliver/transport.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { Scheduler } from '../../src/schedule.ts';
import { showSubscriber } from '../../src/subscribers/admin.ts';
import { ReaderCalendars, type CalendarForm } from '../../src/subscribers/calendars.ts';
import { generatedStory, makeProject } from '../helpers/project.ts';

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (open.length) await open.pop()!();
});

interface Harness {
  app: App;
  runtime: Runtime;
  clock: { now: Date };
  scheduler(): Scheduler;
  reader(email: string, form?: CalendarForm): number;
  choose(id: number, form: CalendarForm): void;
  calendars: ReaderCalendars;
  /** Installment numbers an address was sent, ascending. */
  got(email: string): number[];
  theEnd(email: string): number;
}

function harness(settings: Record<string, unknown> = {}, paragraphs = 40): Harness {
  const project = makeProject({
    story: generatedStory(paragraphs),
    settings: { mode: 'paced', split: { targetWords: 150 }, ...settings },
  });
  const app = project.open();
  const runtime = createRuntime(app, pino({ level: 'silent' }));
  const clock = { now: new Date('2026-06-10T00:00:00Z') };
  const schedulers: Scheduler[] = [];
  open.push(async () => {
    for (const s of schedulers) await s.stop();
    runtime.close();
    project.cleanup();
  });
  const calendars = new ReaderCalendars({
    subscribers: app.store.subscribers,
    config: app.config,
    clock: () => clock.now,
  });
  const choose = (id: number, form: CalendarForm) => {
    const r = calendars.update(app.store.subscribers.get(id)!, form);
    assert.ok(r.ok, JSON.stringify(r));
  };
  const mail = () => listOutbox(app.config.paths.outbox, 100_000);
  return {
    app,
    runtime,
    clock,
    calendars,
    choose,
    scheduler() {
      const s = new Scheduler({
        send: runtime.send,
        meta: runtime.app.store.meta,
        log: pino({ level: 'silent' }),
        clock: () => clock.now,
      });
      schedulers.push(s);
      return s;
    },
    reader(email, form) {
      const id = app.store.subscribers.create({ email, status: 'active' }).id;
      if (form) choose(id, form);
      return id;
    },
    got: (email) =>
      mail()
        .filter((m) => m.to === email)
        .flatMap((m) => {
          const n = /^<installment\.(\d+)\./.exec(m.messageId);
          return n ? [Number(n[1])] : [];
        })
        .sort((a, b) => a - b),
    theEnd: (email) => mail().filter((m) => m.to === email && m.messageId.startsWith('<the-end.')).length,
  };
}

/** Runs the due tick every `minutes` from the clock's time until `until`, returning when something was sent. */
async function tickThrough(h: Harness, s: Scheduler, until: string, minutes = 5): Promise<string[]> {
  const sentAt: string[] = [];
  for (; h.clock.now.getTime() <= Date.parse(until); h.clock.now = new Date(h.clock.now.getTime() + minutes * 60_000)) {
    const r = await s.dueTick();
    if (r.status === 'sent' && r.summary.sent > 0) sentAt.push(h.clock.now.toISOString());
  }
  return sentAt;
}

describe("readers' own calendars", () => {
  test("one installment per slot, at the reader's time in their zone, exactly once; story readers keep the story's runs", async () => {
    const h = harness();
    const kolkata = h.reader('kolkata@example.org', { cadence: 'daily', time: '07:00', timezone: 'Asia/Kolkata' });
    h.reader('story@example.org');
    assert.equal(
      h.app.store.subscribers.get(kolkata)!.nextDueAt,
      '2026-06-10T01:30:00.000Z',
      '07:00 in Kolkata is 01:30 UTC',
    );
    const s = h.scheduler();

    h.clock.now = new Date('2026-06-10T01:25:00Z');
    assert.deepEqual(await s.dueTick(), { status: 'idle' });
    h.clock.now = new Date('2026-06-10T01:30:00Z');
    assert.equal((await s.dueTick()).status, 'sent');
    h.clock.now = new Date('2026-06-10T01:35:00Z');
    assert.deepEqual(await s.dueTick(), { status: 'idle' }, 'one delivery per slot');
    assert.deepEqual(h.got('kolkata@example.org'), [1]);
    assert.deepEqual(h.got('story@example.org'), [], 'a due tick sends only the readers who are due');
    assert.equal(h.app.store.installments.count().published, 0, 'a due tick does not move the public calendar');
    assert.equal(h.app.store.subscribers.get(kolkata)!.nextDueAt, '2026-06-11T01:30:00.000Z');

    // The story's run sends its readers, not the reader whose time has not come.
    assert.equal((await s.tick('scheduled')).status, 'sent');
    assert.deepEqual(h.got('story@example.org'), [1]);
    assert.deepEqual(h.got('kolkata@example.org'), [1]);

    const sends = await tickThrough(h, s, '2026-06-13T00:00:00Z');
    assert.deepEqual(sends, ['2026-06-11T01:30:00.000Z', '2026-06-12T01:30:00.000Z']);
    assert.deepEqual(h.got('kolkata@example.org'), [1, 2, 3]);
  });

  test('DST: a Paris reader at 07:00 is sent at 06:00 UTC before the spring change and 05:00 UTC after it; Adelaide keeps its half hour', async () => {
    const h = harness();
    h.clock.now = new Date('2026-03-27T12:00:00Z');
    h.reader('paris@example.org', { cadence: 'daily', time: '07:00', timezone: 'Europe/Paris' });
    h.reader('adelaide@example.org', { cadence: 'daily', time: '07:00', timezone: 'Australia/Adelaide' });
    h.reader('kiritimati@example.org', {
      cadence: 'weekly',
      weekday: 'monday',
      time: '07:00',
      timezone: 'Pacific/Kiritimati',
    });
    h.reader('baker@example.org', { cadence: 'weekly', weekday: 'monday', time: '07:00', timezone: 'Etc/GMT+12' });
    const s = h.scheduler();
    const sends = await tickThrough(h, s, '2026-03-31T00:00:00Z');
    const when = (email: string) =>
      h.app.store.deliveries.forSubscriber(h.app.store.subscribers.byEmail(email)!.id).map((d) => d.installment);
    assert.deepEqual(when('paris@example.org'), [1, 2, 3]);
    // Paris: 28th 06:00Z (CET), 29th and 30th 05:00Z (CEST). Adelaide (UTC+10:30 until 5 April): 20:30Z the day before.
    // Kiritimati's Monday 07:00 is Sunday 29th 17:00Z; UTC−12's is Monday 30th 19:00Z.
    assert.deepEqual(sends, [
      '2026-03-27T20:30:00.000Z',
      '2026-03-28T06:00:00.000Z',
      '2026-03-28T20:30:00.000Z',
      '2026-03-29T05:00:00.000Z',
      '2026-03-29T17:00:00.000Z',
      '2026-03-29T20:30:00.000Z',
      '2026-03-30T05:00:00.000Z',
      '2026-03-30T19:00:00.000Z',
      '2026-03-30T20:30:00.000Z',
    ]);
    assert.deepEqual([h.got('kiritimati@example.org'), h.got('baker@example.org')], [[1], [1]]);
  });

  test('slots missed while the server was down are made up once, not once per slot', async () => {
    const h = harness({ schedule: { enabled: true, cron: '0 7 * * 1,4', timezone: 'Europe/Paris', catchUp: true } });
    const id = h.reader('daily@example.org', { cadence: 'daily', time: '08:00', timezone: 'UTC' });
    h.clock.now = new Date('2026-06-10T09:00:00Z');
    const a = h.scheduler();
    await a.start();
    await a.stop();
    assert.deepEqual(h.got('daily@example.org'), [1], 'the slot of 08:00 had passed at start: made up at once');

    // Down from the 10th to the 14th: four slots missed.
    h.clock.now = new Date('2026-06-14T12:00:00Z');
    const b = h.scheduler();
    await b.start();
    assert.deepEqual(h.got('daily@example.org'), [1, 2], 'one installment for the four missed slots');
    assert.equal(h.app.store.subscribers.get(id)!.nextDueAt, '2026-06-15T08:00:00.000Z', 'the next slot is after now');
    assert.deepEqual(await b.dueTick(), { status: 'idle' });
    await b.stop();
  });

  test("pause until a date sends nothing until that date in the reader's zone; resume starts again at the next slot", async () => {
    const h = harness();
    h.clock.now = new Date('2026-06-08T00:00:00Z'); // a Monday
    const id = h.reader('weekdays@example.org', { cadence: 'weekdays', time: '07:00', timezone: 'UTC' });
    const s = h.scheduler();
    assert.deepEqual(h.calendars.pause(h.app.store.subscribers.get(id)!, '2026-06-08'), {
      ok: false,
      error: 'Choose a date after today to pause until.',
    });
    assert.deepEqual(h.calendars.pause(h.app.store.subscribers.get(id)!, '2026-06-11'), { ok: true });
    assert.equal(statusData(h.app, h.clock.now).readers.paused, 1);
    const sends = await tickThrough(h, s, '2026-06-15T23:00:00Z', 60);
    // Thursday 11th, Friday 12th, (weekend), Monday 15th.
    assert.deepEqual(sends, ['2026-06-11T07:00:00.000Z', '2026-06-12T07:00:00.000Z', '2026-06-15T07:00:00.000Z']);

    h.clock.now = new Date('2026-06-16T03:00:00Z');
    assert.deepEqual(h.calendars.pause(h.app.store.subscribers.get(id)!, '2026-07-01'), { ok: true });
    h.clock.now = new Date('2026-06-17T09:00:00Z');
    assert.deepEqual(await s.dueTick(), { status: 'idle' });
    h.calendars.resume(h.app.store.subscribers.get(id)!);
    assert.equal(h.app.store.subscribers.get(id)!.nextDueAt, '2026-06-18T07:00:00.000Z');
    assert.equal(statusData(h.app, h.clock.now).readers.paused, 0);
    // A reader on the story's schedule who pauses is left out of the story's runs.
    const story = h.reader('story@example.org');
    h.calendars.pause(h.app.store.subscribers.get(story)!, '2026-06-20');
    await sendRun(h.runtime.send, { now: h.clock.now });
    assert.deepEqual(h.got('story@example.org'), []);
  });

  test("the config's default calendar applies to readers who chose nothing", async () => {
    const h = harness({
      readers: { cadence: 'weekly', days: ['wednesday'], time: '18:00', timezone: 'America/New_York' },
    });
    const id = h.reader('default@example.org');
    h.clock.now = new Date('2026-06-09T12:00:00Z'); // Tuesday
    const s = h.scheduler();
    assert.deepEqual(await s.dueTick(), { status: 'idle' });
    // The first run of either kind gives the reader the default's next slot: Wednesday 18:00 New York.
    await sendRun(h.runtime.send, { due: true, now: h.clock.now });
    assert.equal(h.app.store.subscribers.get(id)!.nextDueAt, '2026-06-10T22:00:00.000Z');
    const sends = await tickThrough(h, s, '2026-06-18T00:00:00Z', 30);
    assert.deepEqual(sends, ['2026-06-10T22:00:00.000Z', '2026-06-17T22:00:00.000Z']);
  });
});

describe('broadcast: joining late', () => {
  test('"from the beginning at my own pace" catches up on the reader\'s calendar, then rejoins the shared one; "only new installments" gets only new ones', async () => {
    const h = harness(
      { mode: 'broadcast', schedule: { enabled: true, cron: '0 7 * * 1,4', timezone: 'UTC', catchUp: true } },
      16,
    );
    h.reader('early@example.org');
    for (let i = 0; i < 3; i++) await sendRun(h.runtime.send, { force: true });
    const total = h.app.store.installments.count().total;
    assert.ok(total >= 5, `${total} installments`);
    h.clock.now = new Date('2026-06-10T00:00:00Z');
    const own = h.reader('own@example.org', { pace: 'own', cadence: 'daily', time: '07:00', timezone: 'UTC' });
    h.reader('new-only@example.org', { pace: 'calendar', cadence: 'daily', time: '07:00', timezone: 'UTC' });
    assert.equal(h.app.store.subscribers.byEmail('new-only@example.org')!.nextDueAt, null);
    const s = h.scheduler();

    assert.deepEqual(await tickThrough(h, s, '2026-06-11T12:00:00Z', 60), [
      '2026-06-10T07:00:00.000Z',
      '2026-06-11T07:00:00.000Z',
    ]);
    // The shared calendar's next installment: to everyone on it, not to the reader at their own pace.
    const fourth = await s.tick('scheduled');
    assert.equal(fourth.status === 'sent' && fourth.summary.installment, 4);
    assert.deepEqual(h.got('own@example.org'), [1, 2]);
    assert.deepEqual(h.got('new-only@example.org'), [4]);

    await tickThrough(h, s, '2026-06-14T12:00:00Z', 60);
    assert.deepEqual(h.got('own@example.org'), [1, 2, 3, 4], 'caught up with everything published');
    assert.equal(h.app.store.subscribers.get(own)!.nextDueAt, null, 'then back on the shared calendar');
    assert.equal((await s.tick('scheduled')).status, 'sent');
    assert.deepEqual(h.got('own@example.org'), [1, 2, 3, 4, 5]);
    assert.deepEqual(h.got('early@example.org'), [1, 2, 3, 4, 5]);
    // The reader's own-pace runs do not count as the shared calendar's last run.
    await assert.rejects(sendRun(h.runtime.send), /the last run \(run \d+\) started at/);
  });
});

describe("catch-up and the author's view", () => {
  test('"send me the rest" gives the whole story and EPUB through "The End"; status and subscribers show say where readers are', async () => {
    const h = harness({}, 12);
    const total = h.app.store.installments.count().total;
    const binge = h.reader('binge@example.org');
    const slow = h.reader('slow@example.org', {
      cadence: 'days',
      days: ['tuesday', 'saturday'],
      time: '21:15',
      timezone: 'Australia/Adelaide',
    });
    h.reader('fresh@example.org');
    h.app.store.subscribers.advance(slow, 1);
    h.calendars.pause(h.app.store.subscribers.get(h.reader('away@example.org'))!, '2026-08-01');

    assert.deepEqual(await sendRest(h.runtime.send, binge), { status: 'sent', from: 1 });
    assert.deepEqual(await sendRest(h.runtime.send, binge), { status: 'finished' });
    assert.equal(h.theEnd('binge@example.org'), 1);
    assert.equal(h.app.store.subscribers.get(binge)!.position, total);
    assert.ok(
      h.app.store.installments.all().every((i) => i.frozenAt !== null),
      'what the reader has can no longer change',
    );
    const theEnd = listOutbox(h.app.config.paths.outbox, 10).find((m) => m.to === 'binge@example.org')!;
    assert.match(theEnd.subject, /The End/);

    const readers = statusData(h.app, h.clock.now).readers;
    assert.deepEqual(readers, {
      atInstallment: [
        { installment: 0, readers: 2 },
        { installment: 1, readers: 1 },
      ],
      finished: 1,
      paused: 1,
      ownCalendar: 1,
    });
    assert.match(
      statusReport(h.app, h.clock.now),
      /^Readers:\s+2 not started, 1 at installment 1, 1 finished; 1 paused; 1 on a calendar of their own$/m,
    );
    const shown = showSubscriber(h.app.store, 'slow@example.org', h.app.config);
    assert.deepEqual(shown.reading, {
      installment: 1,
      of: total,
      finished: false,
      calendar: { cadence: 'days', days: ['tuesday', 'saturday'], time: '21:15', timezone: 'Australia/Adelaide' },
      pausedUntil: null,
      nextDueAt: '2026-06-13T11:45:00.000Z',
    });
  });
});
