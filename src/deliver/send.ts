// One send run: decide who gets which installment, then deliver each message exactly once.
// The CLI, the scheduler and the web's "next one now" all come through here.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.ts';
import { UserError } from '../errors.ts';
import type { EmailRenderer } from '../render/email.ts';
import type { Store } from '../store/index.ts';
import type { StoredInstallment } from '../store/installments.ts';
import type { Run, RunCounts, RunKind } from '../store/runs.ts';
import type { Subscriber } from '../store/subscribers.ts';
import { defaultDue, effectiveCalendar, nextDue } from '../subscribers/calendars.ts';
import type { ListMail, MessageIds } from './headers.ts';
import { tooSoonAfter } from './interval.ts';
import { dateHeader, type InstallmentMail } from './installment-mail.ts';
import type { NoticeSender } from './notices.ts';
import { backoffMs, classify, type Failure } from './replies.ts';
import type { MailTransport } from './transport.ts';

/**
 * The ledger a send works on: who reads, what they were sent, the runs and their lock, the
 * installments (db only for transactions that span these).
 */
export type SendLedger = Pick<Store, 'db' | 'deliveries' | 'subscribers' | 'runs' | 'installments'>;

export interface SendContext {
  store: SendLedger;
  config: Config;
  transport: MailTransport;
  renderer: EmailRenderer;
  ids: MessageIds;
  /** Addresses a filled email to one reader with the list's headers. */
  lists: Pick<ListMail, 'address'>;
  /** Installment emails composed once and filled per reader, for transports that take built messages. */
  installmentMail?: InstallmentMail;
  /** "The End" goes through the notices ledger. */
  notices: Pick<NoticeSender, 'theEnd' | 'drain'>;
  /** How a backoff waits (tests wait on events instead of the clock); resolves early when the signal aborts. */
  wait?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Next scheduled run, shown in broadcast emails ("next installment: …"). */
  nextRunAt?: () => Date | null;
  /** What a run reports as it goes, for the logs: one event per refusal, bounce or recovery. */
  log?: (e: SendEvent) => void;
  /** Frees the template compiler (MJML) once a run has composed every email it will send. */
  releaseCompiler?: () => void;
}

/** A delivery event worth a log line, with the fields log search needs. */
export interface SendEvent {
  event: 'delivery.failed' | 'subscriber.bounced' | 'delivery.interrupted';
  level: 'info' | 'warn';
  message: string;
  subscriber: number;
  installment?: number;
  /** The relay's reply, for refusals. */
  reply?: string;
}

export interface SendOptions {
  kind?: RunKind;
  installment?: number;
  /** Continue the unfinished (paused or crashed) run; 'auto' does so only when there is one. */
  resume?: boolean | 'auto';
  /** Queue again the failed deliveries of this run (true: the latest run that has some), then resume it. */
  retryFailed?: number | true;
  limit?: number;
  /** Start a broadcast run even within the minimum interval of the last one (see interval.ts). */
  force?: boolean;
  /**
   * Only the readers whose own calendar has come due (the scheduler's frequent tick): the
   * story's calendar, public or shared, does not move.
   */
  due?: boolean;
  /** The time readers' calendars are judged by (injectable for tests). */
  now?: Date;
  signal?: AbortSignal;
  onProgress?: (counts: RunCounts) => void;
}

export interface SendSummary extends RunCounts {
  runId: number | null;
  mode: 'broadcast' | 'paced';
  installment: number | null;
  status: 'finished' | 'paused' | 'nothing-to-send';
  /** A run of readers' own calendars only (SendOptions.due). */
  due: boolean;
  reason?: string;
  /** Paused for the operator to fix something (relay policy, refused session): the schedule does not resume it. */
  needsOperator?: boolean;
  /** In-flight rows found after a crash, re-sent (or failed) per delivery.inFlightPolicy. */
  recovered: number;
  finishedReaders: number;
}

export class SenderBusyError extends UserError {}

/** Well inside the store's LOCK_STALE_MS, after which a silent lock counts as a dead process's. */
const HEARTBEAT_MS = 5_000;

/** What an email needs of its reader: whom to address, and what their links are signed with. */
type Reader = Pick<Subscriber, 'id' | 'feedToken' | 'email'>;

interface Job {
  sub: Subscriber;
  inst: StoredInstallment;
  /** Sent because the reader's own calendar came due: their next delivery moves on once it is sent. */
  due?: boolean;
}

/** A backoff: `ms` of real time, cut short by a shutdown. */
const waitFor = (ms: number, signal?: AbortSignal): Promise<void> =>
  sleep(ms, undefined, { signal }).catch(() => undefined);

const zeroCounts = (): RunCounts => ({ planned: 0, sent: 0, failed: 0, retried: 0, skipped: 0, possibleDuplicates: 0 });

/** A test send: another address, a marked subject, and a Message-ID of its own (see sendTest). */
interface TestSend {
  to: string;
}

/** What every email of one run says alike, looked up once per run rather than per message. */
interface RunFacts {
  total: number;
  /** ISO date of the next scheduled run, or null. */
  nextDate: string | null;
  /** The Date header for a message sent now: formatted once a second, not once a message. */
  date(): string;
}

/** The "next installment" date an installment's email shows: none in the last one. */
const nextDateOf = (facts: RunFacts, inst: StoredInstallment): string | null =>
  inst.number >= facts.total ? null : facts.nextDate;

function runFacts(ctx: SendContext): RunFacts {
  const next = ctx.nextRunAt?.() ?? null;
  let second = -1;
  let formatted = '';
  return {
    total: ctx.store.installments.count().total,
    nextDate: next ? next.toISOString() : null,
    date() {
      const now = Math.floor(Date.now() / 1000);
      if (now !== second) [second, formatted] = [now, dateHeader(new Date(now * 1000))];
      return formatted;
    },
  };
}

/**
 * Fills and sends one installment to one subscriber (no bookkeeping). MJML runs once per
 * installment, in the renderer; where the transport takes built messages, nodemailer
 * composes the MIME once per installment too, and each reader's bytes are the template
 * filled (installment-mail.ts).
 */
async function deliverMessage(
  ctx: SendContext,
  facts: RunFacts,
  { sub, inst }: { sub: Reader; inst: StoredInstallment },
  test?: TestSend,
): Promise<string> {
  const nextDate = nextDateOf(facts, inst);
  const id = test ? ctx.ids.test(inst.number) : ctx.ids.installment(sub, inst.number);
  const template =
    !test && ctx.transport.sendRaw && ctx.installmentMail
      ? await ctx.installmentMail.template(inst, nextDate)
      : undefined;
  if (template) {
    const raw = template.bytesFor(sub, { messageId: id, date: facts.date() });
    const { size } = await ctx.transport.sendRaw!(sub.email, raw, id);
    // A server that answered before the end of the data could still be sent these bytes.
    if (size !== undefined && size >= raw.length) template.release(raw);
    return id;
  }
  const prepared = await ctx.renderer.installment(inst, { nextDate });
  const { email, unsubscribeUrl } = prepared.fillFor(sub);
  const mail = ctx.lists.address(email, test?.to ?? sub.email, unsubscribeUrl, id, 'installment');
  const result = await ctx.transport.send(test ? { ...mail, subject: `[TEST] ${mail.subject}` } : mail);
  return result.messageId;
}

/**
 * Messages claimed and not yet sent or failed at any moment: enough to keep every pooled SMTP
 * connection busy, and the most a crash can leave in `sending` (possible duplicates).
 */
export const sendConcurrency = (config: Config): number => Math.max(2, config.mail.maxConnections * 2);

/** Pulls up to `n` jobs. */
function take<T>(jobs: Iterator<T>, n: number): T[] {
  const out: T[] = [];
  while (out.length < n) {
    const next = jobs.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

const STOPPED = 'stopped (shutdown); resume with: feuilleton send --resume';
const NOTHING_MARKED = 'Nothing was marked failed or bounced: fix it, then: feuilleton send --resume';

/** A permanent refusal held back from the reader's record until the streak it belongs to is judged. */
interface Refusal {
  deliveryId: number;
  sub: Subscriber;
  failure: Failure;
}

class Runner {
  readonly counts = zeroCounts();
  paused: string | undefined;
  /** The pause is the operator's to fix (relay policy, refused session): nothing is retried by itself. */
  needsOperator = false;
  /** Another process took the send lock (this one was frozen past its staleness): claim nothing more. */
  lockLost = false;
  private readonly inFlight = new Set<Promise<void>>();
  /** Wakes the dispatcher: a message was sent or failed, or started a backoff. */
  private slotFreed: (() => void) | undefined;
  /** Messages in flight that are waiting out a backoff, not using a connection. */
  private backingOff = 0;
  private readonly concurrency: number;
  private readonly facts: RunFacts;
  /**
   * Messages the server has accepted, marked `sent` in the same transaction as the next
   * batch of claims (or when the run ends), so the ledger commits once per batch, while
   * the rows in `sending` still never outnumber the slots. A crash before that commit
   * leaves them `sending`, as a crash just after the SMTP reply always could.
   */
  private accepted: Array<{ deliveryId: number; messageId: string; job: Job }> = [];
  private readonly claimBatch: (jobs: Job[]) => Array<ReturnType<SendLedger['deliveries']['claim']>>;
  /** No more claims: from now on each accepted message is marked at once. */
  private closing = false;
  /** A bookkeeping failure inside a delivery: the run stops and rethrows it. */
  private error: Error | undefined;
  /**
   * The latest permanent refusals, all of one reply class. A misconfigured relay refuses
   * every message alike: once the streak reaches delivery.breakerThreshold the run pauses
   * and these go back to the queue. Until the streak is broken no refusal counts as a
   * bounce against its reader.
   */
  private streak: Refusal[] = [];

  constructor(
    private readonly ctx: SendContext,
    private readonly run: Run,
    private readonly opts: SendOptions,
    onSent: (job: Job) => void,
    ownsLock: () => boolean,
    /** A job the ledger would not give (sent or failed already). */
    private readonly onSkipped?: (job: Job) => void,
    facts: RunFacts = runFacts(ctx),
  ) {
    const { store } = ctx;
    this.concurrency = sendConcurrency(ctx.config);
    this.facts = facts;
    // Claimed before the SMTP transaction: a crash from here on leaves a `sending` row.
    // The accepted messages' marks ride along; with no jobs it only marks them. The lock
    // is checked in the same transaction, so a sender that lost it claims nothing more.
    const claim = store.db.transaction((jobs: Job[]) => {
      for (const { deliveryId, messageId, job } of this.accepted) {
        store.deliveries.markSent(deliveryId, messageId);
        onSent(job);
      }
      if (jobs.length > 0 && !ownsLock()) {
        this.lockLost = true;
        return [];
      }
      return jobs.map((job) => store.deliveries.claim(job.sub.id, job.inst.number, this.run.id));
    });
    // Emptied only once the transaction has committed: a rolled-back one keeps its marks.
    this.claimBatch = (jobs) => {
      const claimed = claim(jobs);
      this.accepted = [];
      return claimed;
    };
  }

  private flushAccepted(): void {
    this.claimBatch([]);
  }

  async drain(jobs: Iterable<Job>): Promise<void> {
    try {
      await this.dispatch(jobs);
    } finally {
      this.closing = true;
      this.flushAccepted();
      await Promise.allSettled(this.inFlight);
    }
    // A streak the run ends on is judged only when the run finished: stopped early (a
    // shutdown, --limit, an outage) it may have been the start of a storm, so those go back
    // to the queue rather than count against their readers.
    if (this.paused) this.requeueStreak();
    else this.judgeStreak();
    if (this.error) throw this.error;
  }

  /**
   * Claims in batches, one commit per batch instead of one per message (most of what the
   * ledger costs). A batch fills every free slot once no more messages are on the wire
   * than the pool has connections (half the slots), so no connection waits for work; a
   * message waiting out a backoff holds its slot but no connection. The rows in `sending`
   * never outnumber the slots.
   */
  private async dispatch(jobs: Iterable<Job>): Promise<void> {
    const pending = jobs[Symbol.iterator]();
    const refillAt = Math.floor(this.concurrency / 2);
    for (;;) {
      if (this.paused) break;
      if (this.opts.signal?.aborted) {
        this.paused = STOPPED;
        break;
      }
      const room = this.concurrency - this.inFlight.size;
      const allowed =
        this.opts.limit === undefined ? Infinity : this.opts.limit - this.counts.sent - this.inFlight.size;
      // Under --limit, messages in flight may still fail: the limit is reached only once they are sent or failed.
      if (room <= 0 || this.inFlight.size - this.backingOff > refillAt || (allowed <= 0 && this.inFlight.size > 0)) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      const batch = take(pending, Math.min(room, Math.max(allowed, 1)));
      if (batch.length === 0) break;
      if (allowed <= 0) {
        // Unclaimed, so the resumed run sends it.
        this.paused = `stopped at --limit ${this.opts.limit}; continue with: feuilleton send --resume`;
        break;
      }
      const claims = this.claimBatch(batch);
      if (this.lockLost) {
        this.paused = 'another process took over the send lock; this one stopped before claiming more';
        break;
      }
      claims.forEach((claim, i) => {
        if (!claim) {
          this.counts.skipped++;
          this.onSkipped?.(batch[i]!);
          return;
        }
        if (claim.possibleDuplicate) this.counts.possibleDuplicates++;
        const p = this.deliver(batch[i]!, claim.id)
          .catch((err: unknown) => {
            this.error ??=
              err instanceof Error ? err : new Error('a delivery failed with a non-error value', { cause: err });
            this.paused ??= `stopped by an error: ${err instanceof Error ? err.message : String(err)}`;
          })
          .finally(() => {
            this.inFlight.delete(p);
            this.slotFreed?.();
          });
        this.inFlight.add(p);
      });
    }
  }

  private async deliver(job: Job, deliveryId: number): Promise<void> {
    // The budget is per run: a row requeued by an outage starts afresh on --resume, while
    // the ledger's `attempts` keeps counting every try for the record.
    for (let tries = 1; ; tries++) {
      let messageId: string;
      try {
        messageId = await deliverMessage(this.ctx, this.facts, job);
      } catch (err) {
        const retry = await this.failed(err, job, deliveryId, tries);
        if (retry) continue;
        return;
      }
      // Outside the try: a bookkeeping error must not pass for a mail error and send again.
      this.accepted.push({ deliveryId, messageId, job });
      if (this.closing) this.flushAccepted();
      if (job.sub.hardBounces > 0) this.ctx.store.subscribers.clearBounces(job.sub.id);
      // The relay takes mail: the refusals before this one were about those messages.
      if (!this.needsOperator) this.judgeStreak();
      this.counts.sent++;
      this.opts.onProgress?.(this.counts);
      return;
    }
  }

  /** Settles a failed try; true when it is worth another after the backoff. */
  private async failed(err: unknown, job: Job, deliveryId: number, tries: number): Promise<boolean> {
    const { store, config } = this.ctx;
    const { maxAttempts, backoffBaseMs, backoffMaxMs } = config.delivery;
    // A reader's own row that cannot become a message (an address with a line break in it)
    // fails that delivery alone: it is neither the relay's trouble nor worth a retry.
    if (err instanceof UserError) {
      store.deliveries.markFailed(deliveryId, err.message);
      this.counts.failed++;
      return false;
    }
    const failure = classify(err);
    if (failure.kind === 'permanent') {
      this.refused({ deliveryId, sub: job.sub, failure }, job.inst.number);
      return false;
    }
    if (failure.kind === 'fatal' || tries >= maxAttempts || this.paused) {
      store.deliveries.requeue(deliveryId, failure.message);
      if (failure.kind === 'fatal') {
        this.pauseForOperator(
          `the mail server refused the session: ${failure.message}; fix mail settings, then: feuilleton send --resume`,
        );
      } else {
        this.paused ??=
          `mail server unavailable after ${tries} attempts (${failure.message}); ` +
          'resume with: feuilleton send --resume';
      }
      return false;
    }
    this.counts.retried++;
    this.opts.onProgress?.(this.counts);
    this.backingOff++;
    this.slotFreed?.();
    // A shutdown does not wait out a backoff of up to a minute.
    await (this.ctx.wait ?? waitFor)(backoffMs(tries, backoffBaseMs, backoffMaxMs), this.opts.signal);
    this.backingOff--;
    if (this.opts.signal?.aborted) {
      store.deliveries.requeue(deliveryId, failure.message);
      this.paused ??= STOPPED;
      return false;
    }
    store.deliveries.bumpAttempt(deliveryId, failure.message);
    return true;
  }

  /**
   * A permanent refusal. A policy refusal (5.7.x), or the Nth alike in a row, is the
   * relay's doing: the run pauses for the operator and the refused messages go back to
   * the queue, failed by nobody and bounced by nobody.
   */
  private refused(r: Refusal, installment: number): void {
    const { store, config } = this.ctx;
    const { failure } = r;
    if (this.needsOperator || failure.policy) {
      store.deliveries.requeue(r.deliveryId, failure.message);
      this.pauseForOperator(
        `the relay refused a message by policy (${failure.message}); this is a relay or account setting ` +
          "(sender not verified, relaying denied), not the reader's address. " +
          NOTHING_MARKED,
      );
      return;
    }
    store.deliveries.markFailed(r.deliveryId, failure.message);
    this.counts.failed++;
    this.ctx.log?.({
      event: 'delivery.failed',
      level: 'warn',
      message: `failed: ${r.sub.email}, installment ${installment}: ${failure.message}`,
      subscriber: r.sub.id,
      installment,
      reply: failure.message,
    });
    if (this.streak.length > 0 && this.streak[0]!.failure.replyClass !== failure.replyClass) this.judgeStreak();
    this.streak.push(r);
    if (this.streak.length >= config.delivery.breakerThreshold) {
      this.requeueStreak();
      this.pauseForOperator(
        `the relay refused ${config.delivery.breakerThreshold} messages in a row alike (${failure.message}); ` +
          `that is a relay or account problem, not ${config.delivery.breakerThreshold} bad addresses. ` +
          NOTHING_MARKED,
      );
    }
    this.opts.onProgress?.(this.counts);
  }

  /** The streak's deliveries back to the queue, failed by nobody and bounced by nobody. */
  private requeueStreak(): void {
    const { store } = this.ctx;
    for (const held of this.streak) store.deliveries.requeueFailedRow(held.deliveryId, held.failure.message);
    this.counts.failed -= this.streak.length;
    this.streak = [];
  }

  /** The streak was the readers' own refusals after all: count their hard bounces. */
  private judgeStreak(): void {
    if (this.streak.length === 0) return;
    const { store, config } = this.ctx;
    for (const { sub, failure } of this.streak) {
      if (failure.hardBounce && store.subscribers.recordHardBounce(sub.id, config.delivery.bounceLimit)) {
        this.ctx.log?.({
          event: 'subscriber.bounced',
          level: 'warn',
          message: `${sub.email} marked bounced after ${config.delivery.bounceLimit} hard bounces`,
          subscriber: sub.id,
          reply: failure.message,
        });
      }
    }
    this.streak = [];
  }

  private pauseForOperator(reason: string): void {
    if (!this.needsOperator) this.paused = reason;
    this.needsOperator = true;
  }
}

/**
 * Composes, before the first message, every email the run will send: a broadcast's one
 * installment, the installments paced readers stand at, and "The End" where a reader can
 * reach it. Then the compiler's memory is given back before the run's own is at its
 * largest, rather than on top of it. An email left out is still composed when first needed.
 */
async function composeAhead(ctx: SendContext, facts: RunFacts, insts: StoredInstallment[], theEnd: boolean) {
  if (!ctx.transport.sendRaw || !ctx.installmentMail) return;
  const mail = ctx.installmentMail;
  await Promise.all(insts.map((inst) => mail.template(inst, nextDateOf(facts, inst))));
  if (theEnd) await ctx.renderer.theEnd();
  ctx.releaseCompiler?.();
}

/** Readers on the story's calendar: not paused, and not at their own pace. */
function* broadcastJobs(store: SendLedger, inst: StoredInstallment, now: Date): Generator<Job> {
  for (const sub of store.subscribers.iterate({ status: 'active', storyCalendarAt: now.toISOString() }))
    yield { sub, inst };
}

/** Where one run stands on readers' calendars: its time, and each calendar's next slot worked out once. */
class CalendarRun {
  readonly at: string;
  private readonly slots = new Map<string, string | null>();
  /** Readers of this run who were sent the last installment (owed "The End"). */
  readonly finished: Subscriber[] = [];

  constructor(
    private readonly config: Config,
    readonly now: Date,
  ) {
    this.at = now.toISOString();
  }

  /** The reader's next delivery after this one: readers due together mostly share a calendar. */
  nextFor(sub: Subscriber): string | null {
    const cal = effectiveCalendar(sub.choices, this.config);
    const key = cal && `${cal.cadence}|${cal.days}|${cal.minute}|${cal.timezone}`;
    if (key === null) return null;
    if (!this.slots.has(key))
      this.slots.set(key, nextDue({ ...sub.choices, pausedUntil: null, pausedUntilAt: null }, this.config, this.now));
    return this.slots.get(key)!;
  }
}

/** Freezes each installment once per run, before anyone is sent it. */
function freezer(store: SendLedger): (inst: StoredInstallment) => StoredInstallment {
  const frozen = new Set<number>();
  return (inst) => {
    if (!frozen.has(inst.number)) {
      store.installments.freeze(inst.number);
      frozen.add(inst.number);
    }
    return inst;
  };
}

/** What a run's job generators read: the run, the story's installments, the readers' calendars. */
interface JobSource {
  store: SendLedger;
  config: Config;
  runId: number;
  /** A resumed run skips readers it already sent to. */
  resuming: boolean;
  installments: StoredInstallment[];
  cal: CalendarRun;
  freeze: (inst: StoredInstallment) => StoredInstallment;
}

function* pacedJobs({ store, runId, resuming, installments, cal, freeze }: JobSource): Generator<Job> {
  for (const sub of store.subscribers.iterate({
    status: 'active',
    maxPosition: installments.length - 1,
    storyCalendarAt: cal.at,
  })) {
    // One installment per reader per run, also across a --resume of the same run (a new
    // run has no deliveries yet, so only a resumed one needs to ask).
    if (resuming && store.deliveries.sentInRun(sub.id, runId)) continue;
    const inst = installments[sub.position];
    if (!inst) continue;
    yield { sub, inst: freeze(inst) };
  }
}

/**
 * Readers whose own delivery time has come: each is sent their next installment (in
 * broadcast, the next published one they have not had). One per reader per due time: once
 * sent, their next_due_at moves past now and they leave the index range walked here.
 */
function* dueJobs({ store, config, runId, resuming, installments, cal, freeze }: JobSource): Generator<Job> {
  const broadcast = config.mode === 'broadcast';
  for (const sub of store.subscribers.iterateDue(cal.at)) {
    const due = sub.nextDueAt!;
    // The config's default went back to the story's runs: so does this reader.
    if (!effectiveCalendar(sub.choices, config)) {
      store.subscribers.moveDue(sub.id, due, null);
      continue;
    }
    if (resuming && store.deliveries.sentInRun(sub.id, runId)) continue;
    let inst = installments[sub.position];
    // Broadcast readers were sent the shared calendar's installments without a place kept: skip those.
    while (broadcast && inst && store.deliveries.get(sub.id, inst.number)?.status === 'sent')
      inst = installments[inst.number];
    if (!inst || (broadcast && !inst.publishedAt)) {
      // Caught up with the shared calendar, a broadcast reader rejoins it; a paced one at the end waits for more.
      if (broadcast) store.subscribers.rejoinSchedule(sub.id);
      else store.subscribers.moveDue(sub.id, due, cal.nextFor(sub));
      continue;
    }
    yield { sub, inst: freeze(inst), due: true };
  }
}

/** Which broadcast installment a new run sends: the one asked for, else the first unpublished. */
function broadcastTarget(all: StoredInstallment[], asked: number | undefined): StoredInstallment | undefined {
  if (asked === undefined) return all.find((i) => !i.publishedAt);
  const inst = all.find((i) => i.number === asked);
  if (!inst)
    throw new UserError(
      `installment ${asked} does not exist; the story has ${all.length} installments (see "feuilleton installments")`,
    );
  const firstUnpublished = all.find((i) => !i.publishedAt);
  if (!inst.publishedAt && firstUnpublished && firstUnpublished.number < inst.number) {
    throw new UserError(
      `installment ${asked} cannot be sent before installment ${firstUnpublished.number}; send them in order`,
    );
  }
  return inst;
}

/**
 * Runs `fn` as the only sender (across processes), keeping the lock's heartbeat alive.
 * `fn` gets a check that the lock is still ours: a process frozen past the lock's
 * staleness may find another sender has taken over.
 */
async function withSendLock<T>(store: SendLedger, fn: (ownsLock: () => boolean) => Promise<T>): Promise<T> {
  const owner = randomUUID();
  const lock = store.runs.acquireLock(owner);
  if (!lock.ok) {
    const h = lock.holder;
    throw new SenderBusyError(
      `another send is running (process ${h.pid} on ${h.host}, since ${h.since}); ` +
        'wait for it to finish and check "feuilleton status"',
    );
  }
  const heartbeat = setInterval(() => store.runs.heartbeat(owner), HEARTBEAT_MS);
  heartbeat.unref();
  try {
    return await fn(() => store.runs.holdsLock(owner));
  } finally {
    clearInterval(heartbeat);
    store.runs.releaseLock(owner);
  }
}

export async function sendRun(ctx: SendContext, opts: SendOptions = {}): Promise<SendSummary> {
  const { store, config } = ctx;
  const mode = config.mode;
  if (mode === 'paced' && opts.installment !== undefined) {
    throw new UserError(
      '--installment applies to broadcast mode; in paced mode each reader gets their own next installment ' +
        '(use --to ADDRESS --installment N for a test send)',
    );
  }
  return withSendLock(store, async (ownsLock) => {
    const retrying = opts.retryFailed === undefined ? undefined : requeueFailedRun(store, opts.retryFailed);
    const unfinished = store.runs.unfinished();
    if (unfinished && !opts.resume && opts.retryFailed === undefined) {
      throw new UserError(
        `run ${unfinished.id} (${unfinished.note ?? ''}) did not finish (${unfinished.status}); ` +
          'continue it with: feuilleton send --resume',
      );
    }
    if (!unfinished && opts.resume === true)
      throw new UserError('there is no paused or interrupted run to resume; run "feuilleton send" to start one');
    // We hold the lock, so every `sending` row belongs to a process that died.
    const recovered = store.deliveries.recoverInFlight(config.delivery.inFlightPolicy);
    for (const d of recovered)
      ctx.log?.({
        event: 'delivery.interrupted',
        level: 'warn',
        message:
          `interrupted while sending: subscriber ${d.subscriberId}, installment ${d.installment} ` +
          `(${config.delivery.inFlightPolicy === 'resend' ? 're-sending: possible duplicate' : 'marked failed'})`,
        subscriber: d.subscriberId,
        installment: d.installment,
      });

    const resumeNote = unfinished?.note
      ? (JSON.parse(unfinished.note) as { installment?: number; due?: boolean })
      : undefined;
    const kind = opts.kind ?? 'manual';
    const due = unfinished ? resumeNote?.due === true : opts.due === true;
    const cal = new CalendarRun(config, opts.now ?? new Date());
    // Readers on the config's default calendar get their first own delivery time.
    const armAt = defaultDue(config, cal.now);
    if (armAt) store.subscribers.armDefaults(armAt);
    const installments = store.installments.all();
    let run: Run;
    let installment: StoredInstallment | undefined;
    if (due) {
      if (!unfinished && store.subscribers.countDue(cal.at) === 0)
        return nothingToSend(mode, recovered.length, 'no reader is due', true);
    } else if (mode === 'broadcast') {
      installment = broadcastTarget(installments, unfinished ? resumeNote?.installment : opts.installment);
      if (!installment)
        return nothingToSend(
          mode,
          recovered.length,
          `the story is complete: all ${installments.length} installments are published`,
        );
      const tooSoon = unfinished
        ? null
        : tooSoonAfter(store.runs.latestOfStory(), { kind, force: opts.force, schedule: config.schedule });
      if (tooSoon) throw new UserError(tooSoon);
      store.installments.markPublished(installment.number);
    } else if (!unfinished && kind !== 'on-demand') {
      // The public feed follows the story's own calendar: one more installment per run.
      const nextPublic = installments.find((i) => !i.publishedAt);
      if (nextPublic) store.installments.markPublished(nextPublic.number);
    }
    const planned = retrying
      ? retrying.rows
      : due
        ? store.subscribers.countDue(cal.at)
        : installment
          ? store.subscribers.countByStatus().active - store.deliveries.countSent(installment.number)
          : store.subscribers.countByStatus().active;
    if (unfinished) {
      run = unfinished;
      store.runs.reopen(run.id);
    } else {
      run = store.runs.start(
        kind,
        JSON.stringify({ mode, installment: installment?.number ?? null, ...(due ? { due } : {}) }),
        { ...zeroCounts(), planned },
      );
    }

    const total = installments.length;
    const facts = runFacts(ctx);
    if (!due && !retrying) {
      if (installment) await composeAhead(ctx, facts, [installment], installment.number >= total);
      else {
        const at = store.subscribers.progress(cal.at).byPosition.map((p) => p.position);
        const insts = at.flatMap((position) => installments[position] ?? []);
        await composeAhead(
          ctx,
          facts,
          insts,
          at.some((position) => position >= total - 1),
        );
      }
    }
    const runner = new Runner(
      ctx,
      run,
      opts,
      (job) => {
        if (mode === 'paced' || job.due) store.subscribers.advance(job.sub.id, job.inst.number);
        if (job.due) store.subscribers.moveDue(job.sub.id, job.sub.nextDueAt!, cal.nextFor(job.sub));
        if (job.due && job.inst.number >= total) cal.finished.push(job.sub);
      },
      ownsLock,
      // Sent or failed for good already: that due time is spent all the same.
      (job) => {
        if (job.due) store.subscribers.moveDue(job.sub.id, job.sub.nextDueAt!, cal.nextFor(job.sub));
      },
      facts,
    );
    runner.counts.planned = Math.max(0, planned);
    const source: JobSource = {
      store,
      config,
      runId: run.id,
      resuming: unfinished !== undefined,
      installments,
      cal,
      freeze: freezer(store),
    };
    const jobs = retrying
      ? retryJobs(store, retrying)
      : due
        ? dueJobs(source)
        : installment
          ? broadcastJobs(store, installment, cal.now)
          : (function* () {
              yield* pacedJobs(source);
              yield* dueJobs(source);
            })();
    await runner.drain(jobs);
    // The run is the new holder's now: its record is left for that process to finish.
    if (runner.lockLost)
      throw new SenderBusyError(
        'stopped: another process took over the send lock while this one was stalled; ' +
          `it sent ${runner.counts.sent} message(s) and claimed no more (see "feuilleton status")`,
      );
    // A due run looks only at its own readers; the story's run at every reader who has it all;
    // the broadcast of the last installment at every reader it reached.
    const finishedReaders = runner.paused
      ? 0
      : mode === 'paced' || due
        ? await sendTheEnd(ctx, total, due ? cal.finished : undefined)
        : installment?.number === total
          ? await sendTheEnd(ctx, total, readersSent(store, total))
          : 0;

    const counts = { ...runner.counts };
    store.runs.finish(
      run.id,
      runner.paused ? 'paused' : 'finished',
      counts,
      runner.paused ?? null,
      runner.needsOperator,
    );
    return {
      ...counts,
      runId: run.id,
      mode,
      installment: installment?.number ?? null,
      status: runner.paused ? 'paused' : 'finished',
      due,
      reason: runner.paused,
      needsOperator: runner.needsOperator,
      recovered: recovered.length,
      finishedReaders,
    };
  });
}

/**
 * `send --retry-failed`: once the operator has fixed what made a run's deliveries fail,
 * they go back to the queue and that run is resumed (the readers' place in it is kept).
 */
function requeueFailedRun(store: SendLedger, which: number | true): { runId: number; rows: number } {
  const run = which === true ? store.runs.latestWithFailures() : store.runs.get(which);
  if (!run)
    throw new UserError(
      which === true
        ? 'no run has failed deliveries to retry (see "feuilleton status")'
        : `there is no run ${which} (see "feuilleton status")`,
    );
  const unfinished = store.runs.unfinished();
  if (unfinished && unfinished.id !== run.id)
    throw new UserError(`run ${unfinished.id} did not finish; continue it first with: feuilleton send --resume`);
  if (run.kind === 'on-demand')
    throw new UserError(`run ${run.id} was a single "next one now" request; the reader can ask again`);
  const rows = store.db.transaction(() => {
    const n = store.deliveries.requeueFailed(run.id);
    if (n === 0 && !unfinished) throw new UserError(`run ${run.id} has no failed deliveries to retry`);
    store.runs.pause(run.id, `${n} failed deliveries queued again by --retry-failed`);
    return n;
  })();
  return { runId: run.id, rows };
}

/**
 * A retry sends what was queued again for that run and nothing else: readers who joined
 * since, or have moved on, are not sent an old installment by the way.
 */
function* retryJobs(store: SendLedger, retry: { runId: number }): Generator<Job> {
  for (const { subscriberId, installment } of store.deliveries.queuedOfRun(retry.runId)) {
    const sub = store.subscribers.get(subscriberId);
    const inst = store.installments.get(installment);
    if (sub?.status === 'active' && inst) yield { sub, inst };
  }
}

function nothingToSend(mode: SendSummary['mode'], recovered: number, reason: string, due = false): SendSummary {
  return {
    ...zeroCounts(),
    runId: null,
    mode,
    installment: null,
    status: 'nothing-to-send',
    due,
    reason,
    recovered,
    finishedReaders: 0,
  };
}

/**
 * Readers who have every installment are owed "The End" once: marked finished and
 * queued in one transaction, then sent through the notices ledger before the run returns.
 */
async function sendTheEnd(ctx: SendContext, total: number, readers?: Iterable<Subscriber>): Promise<number> {
  const { store } = ctx;
  if (total === 0) return 0;
  let n = 0;
  const finish = store.db.transaction(
    (sub: Subscriber) => store.subscribers.markFinished(sub.id) && ctx.notices.theEnd(sub),
  );
  for (const sub of readers ?? store.subscribers.iterate({ status: 'active', minPosition: total })) {
    if (!sub.finishedAt && finish(sub)) n++;
  }
  if (n > 0) await ctx.notices.drain();
  return n;
}

/** Active readers the installment was sent to. */
function* readersSent(store: SendLedger, installment: number): Generator<Subscriber> {
  for (const sub of store.subscribers.iterate({ status: 'active' })) {
    if (store.deliveries.get(sub.id, installment)?.status === 'sent') yield sub;
  }
}

/** `send --to ADDRESS`: one test message, not recorded anywhere. */
export async function sendTest(
  ctx: SendContext,
  to: string,
  number: number | undefined,
): Promise<{ installment: number; messageId: string }> {
  const all = ctx.store.installments.all();
  const inst =
    number === undefined ? (all.find((i) => !i.publishedAt) ?? all.at(-1)) : all.find((i) => i.number === number);
  if (!inst)
    throw new UserError(
      number === undefined
        ? 'the story has no installments'
        : `installment ${number} does not exist; the story has ${all.length} installments`,
    );
  // Links in a test send are signed for no reader (id 0): they work for nobody.
  const id = await deliverMessage(
    ctx,
    runFacts(ctx),
    { sub: { id: 0, feedToken: 'test-send', email: to }, inst },
    { to },
  );
  return { installment: inst.number, messageId: id };
}

/** `send --dry-run`: who would get what, computed without sending or recording anything. */
export function planRun(
  { store, config }: Pick<SendContext, 'store' | 'config'>,
  opts: { installment?: number } = {},
): { mode: SendSummary['mode']; lines: Array<{ email: string; installment: number }>; note?: string } {
  if (config.mode === 'broadcast') {
    const unfinished = store.runs.unfinished();
    const asked =
      opts.installment ??
      (unfinished?.note
        ? ((JSON.parse(unfinished.note) as { installment?: number }).installment ?? undefined)
        : undefined);
    const inst = broadcastTarget(store.installments.all(), asked);
    if (!inst) return { mode: 'broadcast', lines: [], note: 'the story is complete: nothing to send' };
    const lines: Array<{ email: string; installment: number }> = [];
    for (const sub of store.subscribers.iterate({ status: 'active' })) {
      const d = store.deliveries.get(sub.id, inst.number);
      if (!d || d.status === 'queued') lines.push({ email: sub.email, installment: inst.number });
    }
    return { mode: 'broadcast', lines };
  }
  const installments = store.installments.all();
  const lines: Array<{ email: string; installment: number }> = [];
  const now = new Date().toISOString();
  // The story's readers, then those whose own time has come.
  for (const readers of [
    store.subscribers.iterate({ status: 'active', maxPosition: installments.length - 1, storyCalendarAt: now }),
    store.subscribers.iterateDue(now),
  ]) {
    for (const sub of readers) {
      const inst = installments[sub.position];
      if (inst) lines.push({ email: sub.email, installment: inst.number });
    }
  }
  return { mode: 'paced', lines };
}

/**
 * Paced mode: the reader's next installment now (installment 1 on confirmation, or the
 * "send me the next one now" link). Goes through the same ledger, so it is never doubled.
 */
export async function sendNext(
  ctx: SendContext,
  subscriberId: number,
): Promise<{ status: 'sent' | 'finished' | 'not-active' | 'failed'; installment?: number }> {
  const { store } = ctx;
  return withSendLock(store, async (ownsLock) => {
    const sub = store.subscribers.get(subscriberId);
    if (!sub || sub.status !== 'active') return { status: 'not-active' };
    const inst = store.installments.get(sub.position + 1);
    if (!inst) return { status: 'finished' };
    store.installments.freeze(inst.number);
    const run = store.runs.start(
      'on-demand',
      JSON.stringify({ mode: 'paced', installment: inst.number, subscriber: sub.id }),
      { ...zeroCounts(), planned: 1 },
    );
    const runner = new Runner(ctx, run, {}, (job) => store.subscribers.advance(job.sub.id, job.inst.number), ownsLock);
    await runner.drain([{ sub, inst }]);
    store.runs.finish(
      run.id,
      runner.paused ? 'paused' : 'finished',
      runner.counts,
      runner.paused ?? null,
      runner.needsOperator,
    );
    return { status: runner.counts.sent === 1 ? 'sent' : 'failed', installment: inst.number };
  });
}

/**
 * Paced mode's catch-up: "send me the rest". The reader is given every installment left at
 * once, as the whole story online and its EPUB, through "The End" (the notices ledger): an
 * email holding the rest of a serial would be clipped by mail clients (Gmail stops at
 * 102 KB) long before the end of most stories, and an e-reader is the place for a long read.
 */
export async function sendRest(
  ctx: SendContext,
  subscriberId: number,
): Promise<{ status: 'sent' | 'finished' | 'not-active'; from?: number }> {
  const { store } = ctx;
  const total = store.installments.count().total;
  const outcome = store.db.transaction((): { status: 'sent' | 'finished' | 'not-active'; from?: number } => {
    const sub = store.subscribers.get(subscriberId);
    if (!sub || sub.status !== 'active') return { status: 'not-active' };
    if (sub.position >= total) return { status: 'finished' };
    // The reader can read them now: their text is fixed from here on, as if sent.
    for (let n = sub.position + 1; n <= total; n++) store.installments.freeze(n);
    store.subscribers.advance(sub.id, total);
    store.subscribers.markFinished(sub.id);
    ctx.notices.theEnd(sub);
    return { status: 'sent', from: sub.position + 1 };
  })();
  if (outcome.status === 'sent') await ctx.notices.drain();
  return outcome;
}
