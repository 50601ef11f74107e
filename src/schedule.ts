// Decides *when* to send; what a tick sends is exactly `feuilleton send` (sendRun).
// The last tick's time is kept in the db so a restart can tell whether a scheduled time
// passed while the server was down, and make up for it once.
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { SenderBusyError, sendRun, type SendContext, type SendSummary } from './deliver/send.ts';
import { summaryLines } from './commands/send.ts';

const LAST_TICK_KEY = 'schedule_last_tick';
/** How far back a missed run is looked for: a server down longer than this just resumes. */
const CATCH_UP_WINDOW_MS = 31 * 86_400_000;

export type TickResult = { status: 'sent'; summary: SendSummary } | { status: 'busy' | 'complete' | 'stopped' };

export class Scheduler {
  readonly task: ScheduledTask;
  private running: Promise<TickResult> | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly deps: { send: SendContext; log: Logger; clock?: () => Date },
  ) {
    const { schedule } = deps.send.app.config;
    this.task = cron.createTask(schedule.cron, () => this.tick('scheduled'), { timezone: schedule.timezone, name: 'feuilleton-send', noOverlap: true });
  }

  private now(): Date {
    return this.deps.clock?.() ?? new Date();
  }

  nextRun(): Date | null {
    return this.task.getNextRun();
  }

  /** The latest scheduled time in (after, now], if any: a run the server missed. */
  missedSince(after: Date, now = this.now()): Date | null {
    const from = Math.max(after.getTime(), now.getTime() - CATCH_UP_WINDOW_MS);
    // Cron resolution is a minute; walk whole minutes back from now.
    const t = new Date(now);
    t.setSeconds(0, 0);
    for (; t.getTime() > from; t.setTime(t.getTime() - 60_000)) {
      if (this.task.match(t)) return new Date(t);
    }
    return null;
  }

  /** Starts the cron task, first making up (once) for a run missed while stopped. */
  async start(): Promise<TickResult | undefined> {
    const { app } = this.deps.send;
    const { meta } = app.store;
    const last = meta.get(LAST_TICK_KEY);
    let caughtUp: TickResult | undefined;
    if (last === undefined) {
      // First start: nothing can have been missed yet.
      meta.set(LAST_TICK_KEY, this.now().toISOString());
    } else {
      const missed = this.missedSince(new Date(last));
      if (missed && app.config.schedule.catchUp) {
        this.deps.log.info(`missed the scheduled run of ${missed.toISOString()} while stopped: catching up with one send now`);
        caughtUp = await this.tick('catch-up');
      } else if (missed) {
        this.deps.log.info(`missed the scheduled run of ${missed.toISOString()} while stopped; schedule.catchUp is off, so it is skipped`);
        meta.set(LAST_TICK_KEY, this.now().toISOString());
      }
    }
    if (app.config.schedule.enabled) {
      await this.task.start();
      this.deps.log.info(`schedule "${app.config.schedule.cron}" (${app.config.schedule.timezone}); next run ${this.nextRun()?.toISOString() ?? 'never'}`);
    }
    return caughtUp;
  }

  /** One scheduled send. A paused or crashed run is resumed first: nothing is skipped. */
  tick(kind: 'scheduled' | 'catch-up'): Promise<TickResult> {
    this.running = (async (): Promise<TickResult> => {
      const { send, log } = this.deps;
      send.app.store.meta.set(LAST_TICK_KEY, this.now().toISOString());
      if (this.abort.signal.aborted) return { status: 'stopped' };
      try {
        const summary = await sendRun(send, { kind, resume: 'auto', signal: this.abort.signal });
        if (summary.status === 'nothing-to-send') {
          log.info(`${kind} run: ${summary.reason}`);
          return { status: 'complete' };
        }
        for (const line of summaryLines(summary)) log.info(`${kind} run: ${line.trim()}`);
        return { status: 'sent', summary };
      } catch (err) {
        if (err instanceof SenderBusyError) {
          log.warn(`${kind} run skipped: ${err.message}`);
          return { status: 'busy' };
        }
        log.error({ err }, `${kind} run failed`);
        throw err;
      }
    })();
    return this.running;
  }

  /** Stops the timer; an in-flight run checkpoints (pauses) and is awaited. */
  async stop(): Promise<void> {
    await this.task.stop();
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }
}
