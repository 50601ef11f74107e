// Decides *when* to send; what a tick sends is exactly `feuilleton send` (sendRun).
// The last tick's time is kept in the db so a restart can tell whether a scheduled time
// passed while the server was down, and make up for it once.
// Besides the story's own calendar (the cron expression), a frequent "due" tick sends the
// readers whose own calendar has come due; a reader's time missed while the server was down
// is still due at the next one, and made up once (their next time is then after now).
import { setTimeout as sleep } from 'node:timers/promises';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { SenderBusyError, sendRun, type SendContext, type SendSummary } from './deliver/send.ts';
import { summaryLines } from './deliver/summary.ts';
import type { MetaStore } from './store/meta.ts';
import type { Run } from './store/runs.ts';

const LAST_TICK_KEY = 'schedule_last_tick';
/** How far back a missed run is looked for: a server down longer than this just resumes. */
const CATCH_UP_WINDOW_MS = 31 * 86_400_000;

export type TickResult =
  | { status: 'sent'; summary: SendSummary }
  | { status: 'busy' | 'complete' | 'stopped' | 'blocked' | 'idle' }
  | { status: 'failed'; error: unknown };

/** While a dead sender's lock is not yet stale, look again this often. */
const LOCK_RETRY_MS = 5_000;

export class Scheduler {
  readonly task: ScheduledTask;
  private readonly running = new Set<Promise<TickResult>>();
  private readonly abort = new AbortController();
  /** Seconds of the minute the cron fires at ([0] for the usual five-field expression). */
  private readonly seconds: number[];
  /** The due tick in progress: the story's tick waits for it rather than finding the lock taken. */
  private dueRunning: Promise<TickResult> | undefined;
  private dueTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      send: SendContext;
      /** Where the last tick's time is kept, to catch up after a stop. */
      meta: Pick<MetaStore, 'get' | 'set' | 'delete'>;
      log: Logger;
      clock?: () => Date;
    },
  ) {
    const { schedule } = deps.send.config;
    this.task = cron.createTask(schedule.cron, () => this.tick('scheduled'), {
      timezone: schedule.timezone,
      name: 'feuilleton-send',
      noOverlap: true,
    });
    this.seconds = [...cron.parse(schedule.cron).second].sort((a, b) => b - a);
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
    // Walk whole minutes back from now, trying each second the expression allows, latest first.
    const minute = new Date(now);
    minute.setSeconds(0, 0);
    for (; minute.getTime() + 59_000 > from; minute.setTime(minute.getTime() - 60_000)) {
      for (const s of this.seconds) {
        const t = minute.getTime() + s * 1000;
        if (t > now.getTime() || t <= from) continue;
        if (this.task.match(new Date(t))) return new Date(t);
      }
    }
    return null;
  }

  /** Starts the cron task, first making up (once) for a run missed while stopped. */
  async start(): Promise<TickResult | undefined> {
    const { meta, send } = this.deps;
    const { schedule } = send.config;
    if (!schedule.enabled) {
      // Times passed while the schedule is off are not "missed": enabling it starts afresh.
      meta.delete(LAST_TICK_KEY);
      const unfinished = send.store.runs.unfinished();
      const resume = unfinished
        ? `; run ${unfinished.id} did not finish: continue it with "feuilleton send --resume"`
        : '';
      this.deps.log.info(`schedule.enabled is false: nothing is sent on a schedule (use "feuilleton send")${resume}`);
      return undefined;
    }
    // Read before the resume, which counts as a tick.
    const last = meta.get(LAST_TICK_KEY);
    const unfinished = send.store.runs.unfinished();
    let caughtUp = unfinished && !unfinished.needsOperator ? await this.resumeInterrupted(unfinished) : undefined;
    if (last === undefined) {
      // First start: nothing can have been missed yet.
      meta.set(LAST_TICK_KEY, this.now().toISOString());
    } else {
      const missed = this.missedSince(new Date(last));
      if (missed && schedule.catchUp) {
        this.deps.log.info(
          `missed the scheduled run of ${missed.toISOString()} while stopped: catching up with one send now`,
        );
        caughtUp = await this.tick('catch-up');
      } else if (missed) {
        this.deps.log.info(
          `missed the scheduled run of ${missed.toISOString()} while stopped; ` +
            'schedule.catchUp is off, so it is skipped',
        );
        meta.set(LAST_TICK_KEY, this.now().toISOString());
      }
    }
    // stop() may have come during the catch-up: a stopped scheduler must not arm its timer.
    if (this.abort.signal.aborted) return caughtUp;
    await this.task.start();
    this.deps.log.info(
      `schedule "${schedule.cron}" (${schedule.timezone}); next run ${this.nextRun()?.toISOString() ?? 'never'}`,
    );
    // Readers' own times that passed while stopped are due now: made up once, at this tick.
    await this.dueTick();
    if (this.abort.signal.aborted) return caughtUp;
    this.dueTimer = setInterval(() => void this.dueTick(), send.config.readers.tickMinutes * 60_000);
    this.dueTimer.unref();
    return caughtUp;
  }

  /**
   * Sends every reader whose own delivery time has come (sendRun with `due`). Cheap when
   * nobody is due: one look at the index, no lock, no run recorded. Skipped while another
   * tick of ours runs or a run of the story's calendar waits to be resumed (the story's
   * tick resumes it). Never throws.
   */
  dueTick(): Promise<TickResult> {
    if (this.running.size > 0) return Promise.resolve({ status: 'busy' });
    const run = (async (): Promise<TickResult> => {
      const { send, log } = this.deps;
      const { store } = send;
      if (this.abort.signal.aborted) return { status: 'stopped' };
      const now = this.now();
      const unfinished = store.runs.unfinished();
      const resumingDue =
        unfinished !== undefined && (JSON.parse(unfinished.note ?? '{}') as { due?: boolean }).due === true;
      if (unfinished?.needsOperator) return { status: 'blocked' };
      if (unfinished && !resumingDue) return { status: 'idle' };
      if (!resumingDue && store.subscribers.countDue(now.toISOString()) === 0) return { status: 'idle' };
      try {
        const summary = await sendRun(send, {
          kind: 'scheduled',
          due: true,
          resume: 'auto',
          signal: this.abort.signal,
          now,
        });
        if (summary.status === 'nothing-to-send') return { status: 'idle' };
        for (const line of summaryLines(summary)) log.info(`readers' calendars: ${line.trim()}`);
        return { status: 'sent', summary };
      } catch (err) {
        // Another process is sending: the readers stay due for the next tick.
        if (err instanceof SenderBusyError) return { status: 'busy' };
        log.error({ err }, `readers' calendars run failed: ${err instanceof Error ? err.message : String(err)}`);
        return { status: 'failed', error: err };
      }
    })();
    this.dueRunning = run;
    this.running.add(run);
    void run.finally(() => {
      this.running.delete(run);
      if (this.dueRunning === run) this.dueRunning = undefined;
    });
    return run;
  }

  /**
   * A run that a crash or a shutdown left unfinished is resumed now, not at the next
   * scheduled time (which may be days away). Its lock may still be held by the dead
   * process: on another host it is taken over once its heartbeat is stale.
   */
  private async resumeInterrupted(unfinished: Run): Promise<TickResult> {
    const reason = unfinished.reason ? `: ${unfinished.reason}` : '';
    this.deps.log.info(`run ${unfinished.id} did not finish (${unfinished.status}${reason}): resuming it now`);
    for (;;) {
      const result = await this.tick('catch-up', { resumeOnly: true });
      if (result.status !== 'busy' || this.abort.signal.aborted) return result;
      await sleep(LOCK_RETRY_MS, undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
  }

  /**
   * One scheduled send. A paused or crashed run is resumed first: nothing is skipped; a
   * run paused for the operator (relay policy, refused session) waits for them.
   * Never throws: a failed tick is logged, and the next one tries again.
   */
  tick(kind: 'scheduled' | 'catch-up', opts: { resumeOnly?: boolean } = {}): Promise<TickResult> {
    const run = (async (): Promise<TickResult> => {
      const { send, meta, log } = this.deps;
      if (this.dueRunning) await this.dueRunning;
      if (this.abort.signal.aborted) return { status: 'stopped' };
      meta.set(LAST_TICK_KEY, this.now().toISOString());
      const blocked = send.store.runs.unfinished();
      if (blocked?.needsOperator) {
        log.warn(`${kind} run skipped: run ${blocked.id} is paused until the operator acts: ${blocked.reason ?? ''}`);
        return { status: 'blocked' };
      }
      try {
        let summary = await sendRun(send, { kind, resume: 'auto', signal: this.abort.signal, now: this.now() });
        // That was an interrupted run of readers' own calendars: this tick's own run still has
        // to go, unless the tick only finishes what a crash left (a restart between two
        // scheduled times must not send the story's next installment).
        if (summary.due && summary.status === 'finished' && !opts.resumeOnly)
          summary = await sendRun(send, { kind, resume: 'auto', signal: this.abort.signal, now: this.now() });
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
        log.error({ err }, `${kind} run failed: ${err instanceof Error ? err.message : String(err)}`);
        return { status: 'failed', error: err };
      }
    })();
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
    return run;
  }

  /** Stops the timer; in-flight runs checkpoint (pause) and are awaited. */
  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.dueTimer);
    await this.task.destroy();
    await Promise.all(this.running);
  }
}
