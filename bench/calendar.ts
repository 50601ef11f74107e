// What one due tick costs (readers' own calendars): N readers of whom 1,000 are due, in a
// paced project. First the tick's own scheduling work (the due readers walked along the
// index, each one's next slot); then the whole tick through the real sendRun (ledger,
// per-reader message, next delivery times) with a transport that accepts each message at
// once, so the figure is ours, not an SMTP server's. Also an idle tick (nobody due) and the heap after each size,
// to show memory does not grow with the list.
//   node --expose-gc --import tsx bench/calendar.ts [sizes=10000,100000]
import { performance } from 'node:perf_hooks';
import { sendRun, type SendContext } from '../src/deliver/send.ts';
import type { MailTransport } from '../src/deliver/transport.ts';
import { createLogger } from '../src/log.ts';
import { createRuntime } from '../src/runtime.ts';
import { Scheduler } from '../src/schedule.ts';
import { nextDue } from '../src/subscribers/calendars.ts';
import { generatedStory, makeProject } from '../test/helpers/project.ts';

const DUE = 1000;
const sizes = (process.argv[2] ?? '10000,100000').split(',').map(Number);
const silent = createLogger({ level: 'silent', pretty: false });

/** Takes every message at once: what is left is the tick's own work. */
const instant: MailTransport = {
  kind: 'smtp',
  description: 'instant (bench)',
  send: (mail) => Promise.resolve({ messageId: String(mail.messageId), accepted: [], rejected: [] } as never),
  sendRaw: (_to, _raw, messageId) => Promise.resolve({ messageId, accepted: [], rejected: [] } as never),
  close: () => undefined,
};

const heapMb = (): number => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 1048576;
};

async function bench(n: number): Promise<void> {
  const project = makeProject({ story: generatedStory(200), settings: { mode: 'paced', split: { targetWords: 150 } } });
  const app = project.open();
  const runtime = createRuntime(app, silent);
  const ctx: SendContext = { ...runtime.send, transport: instant };
  const now = new Date('2026-06-10T12:00:00Z');
  const { subscribers } = app.store;
  subscribers.importActive(
    Array.from({ length: n }, (_, i) => ({ email: `reader${i}@example.org` })),
    'bench',
  );
  const choices = {
    cadence: 'daily' as const,
    days: null,
    sendMinute: 7 * 60,
    timezone: 'Asia/Kolkata',
    pausedUntil: null,
    pausedUntilAt: null,
  };
  const setDue = (from: number, count: number, at: Date) =>
    app.store.db.transaction(() => {
      for (let id = from; id < from + count; id++) subscribers.setChoices(id, choices, at.toISOString());
    })();
  setDue(1, n, new Date(now.getTime() + 86_400_000));
  setDue(1, DUE, new Date(now.getTime() - 60_000));

  const scheduler = new Scheduler({ send: ctx, meta: app.store.meta, log: silent, clock: () => now });
  // The tick's own scheduling work: walk the due readers along the index and work out each one's next slot.
  const tq = performance.now();
  let found = 0;
  for (const sub of subscribers.iterateDue(now.toISOString())) if (nextDue(sub.choices, app.config, now)) found++;
  const queryMs = performance.now() - tq;
  if (found !== DUE) throw new Error(`found ${found} due readers, expected ${DUE}`);
  const heapBefore = heapMb();
  const t0 = performance.now();
  const summary = await sendRun(ctx, { kind: 'scheduled', due: true, now });
  const tick = performance.now() - t0;
  if (summary.sent !== DUE) throw new Error(`sent ${summary.sent}, expected ${DUE}`);
  // The same again, another thousand readers: the first tick paid for compiling the emails.
  setDue(DUE + 1, DUE, new Date(now.getTime() - 60_000));
  const t1 = performance.now();
  await sendRun(ctx, { kind: 'scheduled', due: true, now });
  const warm = performance.now() - t1;
  const t2 = performance.now();
  const idle = await scheduler.dueTick();
  const idleMs = performance.now() - t2;
  console.log(
    `${n.toLocaleString('en')} readers, ${DUE} due: finding them and their next slots ${queryMs.toFixed(1)} ms; whole tick ${tick.toFixed(0)} ms (first, emails compiled), ${warm.toFixed(0)} ms (warm); idle tick ${idleMs.toFixed(2)} ms (${idle.status}); heap ${heapBefore.toFixed(1)} → ${heapMb().toFixed(1)} MB`,
  );
  await scheduler.stop();
  runtime.close();
  project.cleanup();
}

for (const n of sizes) await bench(n);
