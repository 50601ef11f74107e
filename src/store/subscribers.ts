import { randomBytes } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import type { Cadence } from '../calendar.ts';
import { nowIso, type DB } from './db.ts';

export type SubscriberStatus = 'pending' | 'active' | 'unsubscribed' | 'bounced';
export const SUBSCRIBER_STATUSES: SubscriberStatus[] = ['pending', 'active', 'unsubscribed', 'bounced'];

/** 'schedule': the story's own calendar (every run). */
export type ReaderCadence = Cadence | 'schedule';

/** What a reader chose of their calendar; null fields follow the config's defaults. */
export interface ReaderChoices {
  cadence: ReaderCadence | null;
  days: number | null;
  sendMinute: number | null;
  timezone: string | null;
  /** Local date (YYYY-MM-DD) deliveries start again, and the instant that date begins in the reader's zone. */
  pausedUntil: string | null;
  pausedUntilAt: string | null;
}

export interface Subscriber {
  id: number;
  email: string;
  status: SubscriberStatus;
  createdAt: string;
  confirmedAt: string | null;
  unsubscribedAt: string | null;
  /** Paced mode: the last installment this reader was sent (0 = none yet). */
  position: number;
  feedToken: string;
  consentIp: string | null;
  consentAt: string | null;
  confirmIp: string | null;
  noticeSentAt: string | null;
  hardBounces: number;
  source: string;
  finishedAt: string | null;
  /** Why the status is what it is: 'reader', 'author', 'bounce', 'complaint' (null when active or pending). */
  statusReason: string | null;
  choices: ReaderChoices;
  /** When this reader's own calendar next sends (null: they follow the story's runs). */
  nextDueAt: string | null;
}

interface Row {
  id: number;
  email: string;
  status: SubscriberStatus;
  created_at: string;
  confirmed_at: string | null;
  unsubscribed_at: string | null;
  position: number;
  feed_token: string;
  consent_ip: string | null;
  consent_at: string | null;
  confirm_ip: string | null;
  notice_sent_at: string | null;
  hard_bounces: number;
  source: string;
  finished_at: string | null;
  status_reason: string | null;
  cadence: ReaderCadence | null;
  days: number | null;
  send_minute: number | null;
  timezone: string | null;
  paused_until: string | null;
  paused_until_at: string | null;
  next_due_at: string | null;
}

const fromRow = (r: Row): Subscriber => ({
  id: r.id,
  email: r.email,
  status: r.status,
  createdAt: r.created_at,
  confirmedAt: r.confirmed_at,
  unsubscribedAt: r.unsubscribed_at,
  position: r.position,
  feedToken: r.feed_token,
  consentIp: r.consent_ip,
  consentAt: r.consent_at,
  confirmIp: r.confirm_ip,
  noticeSentAt: r.notice_sent_at,
  hardBounces: r.hard_bounces,
  source: r.source,
  finishedAt: r.finished_at,
  statusReason: r.status_reason,
  choices: {
    cadence: r.cadence,
    days: r.days,
    sendMinute: r.send_minute,
    timezone: r.timezone,
    pausedUntil: r.paused_until,
    pausedUntilAt: r.paused_until_at,
  },
  nextDueAt: r.next_due_at,
});

/** Active readers, for the author: where they are in the story and how they read. */
export interface ReaderProgress {
  /** Active readers by the number of installments they have had (0: none yet). */
  byPosition: Array<{ position: number; readers: number }>;
  paused: number;
  ownCalendar: number;
}

const newFeedToken = (): string => randomBytes(16).toString('base64url');

export interface NewSubscriber {
  email: string;
  status: SubscriberStatus;
  consentIp?: string | null;
  source?: string;
  at?: string;
}

export class SubscriberStore {
  /** Prepared once: a paced send runs it for every reader. */
  private readonly advanceStmt;
  private readonly purgeStalePendingTx;
  private readonly moveDueStmt;
  private readonly armStmt;
  private readonly duePage;
  private readonly firstDue;
  private readonly dueCount;
  private readonly choicesStmt;
  private readonly rejoinStmt;
  private readonly positions;
  private readonly pausedCount;
  private readonly ownCount;

  private readonly byId;
  private readonly byEmailStmt;
  private readonly byFeedTokenStmt;
  private readonly insertStmt;
  private readonly renewStmt;
  private readonly activateStmt;
  private readonly unsubscribeStmt;
  private readonly reactivateStmt;
  private readonly noticeSentStmt;
  private readonly bounceCountStmt;
  private readonly bouncedStmt;
  private readonly clearBouncesStmt;
  private readonly finishedStmt;
  private readonly forgetStmt;
  private readonly byStatus;
  private readonly importStmt;
  /** One statement per shape of `iterate`'s filter, prepared the first time it is used. */
  private readonly pages = new Map<string, Statement<Record<string, unknown>, Row>>();

  constructor(private readonly db: DB) {
    this.advanceStmt = db.prepare('UPDATE subscribers SET position = max(position, ?) WHERE id = ?');
    // Only from the time the sender read: a reader who changed their calendar meanwhile keeps the new one.
    this.moveDueStmt = db.prepare<[string | null, number, string]>(
      'UPDATE subscribers SET next_due_at = ? WHERE id = ? AND next_due_at = ?',
    );
    this.armStmt = db.prepare<[string]>(
      `UPDATE subscribers SET next_due_at = ? WHERE status = 'active' AND next_due_at IS NULL AND cadence IS NULL`,
    );
    // Named: the planner would take subscribers_status (status = ?) and scan every active reader.
    // The conditions are the partial index's, so it can be walked in order.
    this.duePage = db.prepare<{ now: string; afterDue: string; afterId: number; limit: number }, Row>(
      `SELECT * FROM subscribers INDEXED BY subscribers_due
       WHERE status = 'active' AND next_due_at IS NOT NULL AND next_due_at <= @now
         AND (next_due_at, id) > (@afterDue, @afterId)
       ORDER BY next_due_at, id LIMIT @limit`,
    );
    this.dueCount = db.prepare<[string], { n: number }>(
      `SELECT count(*) AS n FROM subscribers INDEXED BY subscribers_due
       WHERE status = 'active' AND next_due_at IS NOT NULL AND next_due_at <= ?`,
    );
    this.firstDue = db.prepare<[], { at: string | null }>(
      `SELECT min(next_due_at) AS at FROM subscribers INDEXED BY subscribers_due
       WHERE status = 'active' AND next_due_at IS NOT NULL`,
    );
    this.choicesStmt = db.prepare(
      `UPDATE subscribers SET cadence = @cadence, days = @days, send_minute = @sendMinute, timezone = @timezone,
       paused_until = @pausedUntil, paused_until_at = @pausedUntilAt, next_due_at = @nextDueAt WHERE id = @id`,
    );
    this.rejoinStmt = db.prepare<[number]>('UPDATE subscribers SET cadence = NULL, next_due_at = NULL WHERE id = ?');
    this.positions = db.prepare<[], { position: number; readers: number }>(
      `SELECT position, count(*) AS readers FROM subscribers
       WHERE status = 'active' GROUP BY position ORDER BY position`,
    );
    this.pausedCount = db.prepare<[string], { n: number }>(
      `SELECT count(*) AS n FROM subscribers WHERE status = 'active' AND paused_until_at > ?`,
    );
    this.ownCount = db.prepare<[], { n: number }>(
      `SELECT count(*) AS n FROM subscribers INDEXED BY subscribers_due
       WHERE status = 'active' AND next_due_at IS NOT NULL`,
    );
    // A request is as old as its consent (a former reader asking again keeps an old
    // created_at), and is never dropped while a confirmation link sent for it still works.
    const stale = `status = 'pending' AND coalesce(consent_at, created_at) < @before
      AND NOT EXISTS (
        SELECT 1 FROM tokens WHERE subscriber_id = subscribers.id AND used_at IS NULL AND expires_at > @now
      )`;
    // Never confirmed: nothing but a stranger's request; tokens and notices go with it (CASCADE).
    const deleteUnconfirmed = db.prepare(`DELETE FROM subscribers WHERE ${stale} AND confirmed_at IS NULL`);
    // A former reader who asked to come back and never confirmed stays a former reader, history kept.
    const lapseComebacks = db.prepare(
      `UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = @now
       WHERE ${stale} AND confirmed_at IS NOT NULL`,
    );
    this.purgeStalePendingTx = db.transaction((before: string, now: string) => ({
      pending: deleteUnconfirmed.run({ before, now }).changes,
      lapsed: lapseComebacks.run({ before, now }).changes,
    }));
    this.byId = db.prepare<[number], Row>('SELECT * FROM subscribers WHERE id = ?');
    this.byEmailStmt = db.prepare<[string], Row>('SELECT * FROM subscribers WHERE email = ?');
    this.byFeedTokenStmt = db.prepare<[string], Row>('SELECT * FROM subscribers WHERE feed_token = ?');
    this.insertStmt = db.prepare<
      [string, SubscriberStatus, string, string | null, string, string | null, string, string]
    >(
      `INSERT INTO subscribers (email, status, created_at, confirmed_at, feed_token, consent_ip, consent_at, source)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.renewStmt = db.prepare<[string | null, string, number]>(
      `UPDATE subscribers SET status = 'pending', consent_ip = ?, consent_at = ?, unsubscribed_at = NULL,
         hard_bounces = 0, status_reason = NULL
       WHERE id = ? AND status IN ('unsubscribed', 'bounced')`,
    );
    this.activateStmt = db.prepare<[string, string | null, number]>(
      // A new subscription starts afresh: the config's default calendar, not a former one.
      `UPDATE subscribers SET status = 'active', confirmed_at = ?, confirm_ip = ?, position = 0, finished_at = NULL,
         cadence = NULL, days = NULL, send_minute = NULL, timezone = NULL,
         paused_until = NULL, paused_until_at = NULL, next_due_at = NULL
       WHERE id = ? AND status = 'pending'`,
    );
    this.unsubscribeStmt = db.prepare<[string, string, number]>(
      `UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = ?, status_reason = ?
       WHERE id = ? AND status != 'unsubscribed'`,
    );
    this.reactivateStmt = db.prepare<[string, number]>(
      `UPDATE subscribers SET status = 'active', confirmed_at = coalesce(confirmed_at, ?), hard_bounces = 0,
         unsubscribed_at = NULL, status_reason = NULL
       WHERE id = ?`,
    );
    this.noticeSentStmt = db.prepare<[string, number]>('UPDATE subscribers SET notice_sent_at = ? WHERE id = ?');
    this.bounceCountStmt = db.prepare<[number]>('UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = ?');
    this.bouncedStmt = db.prepare<[number, number]>(
      `UPDATE subscribers SET status = 'bounced', status_reason = 'bounce'
       WHERE id = ? AND hard_bounces >= ? AND status = 'active'`,
    );
    this.clearBouncesStmt = db.prepare<[number]>(
      'UPDATE subscribers SET hard_bounces = 0 WHERE id = ? AND hard_bounces > 0',
    );
    this.finishedStmt = db.prepare<[string, number]>(
      'UPDATE subscribers SET finished_at = ? WHERE id = ? AND finished_at IS NULL',
    );
    this.forgetStmt = db.prepare<[number]>('DELETE FROM subscribers WHERE id = ?');
    this.byStatus = db.prepare<[], { status: SubscriberStatus; n: number }>(
      'SELECT status, count(*) AS n FROM subscribers GROUP BY status',
    );
    this.importStmt = db.prepare(
      `INSERT INTO subscribers (email, status, created_at, confirmed_at, feed_token, consent_at, source)
       VALUES (@email, 'active', @at, @at, @token, @at, @source) ON CONFLICT (email) DO NOTHING`,
    );
  }

  get(id: number): Subscriber | undefined {
    const row = this.byId.get(id);
    return row && fromRow(row);
  }

  byEmail(email: string): Subscriber | undefined {
    const row = this.byEmailStmt.get(email);
    return row && fromRow(row);
  }

  byFeedToken(token: string): Subscriber | undefined {
    const row = this.byFeedTokenStmt.get(token);
    return row && fromRow(row);
  }

  create(s: NewSubscriber): Subscriber {
    const at = s.at ?? nowIso();
    const active = s.status === 'active';
    const info = this.insertStmt.run(
      s.email,
      s.status,
      at,
      active ? at : null,
      newFeedToken(),
      s.consentIp ?? null,
      at,
      s.source ?? 'web',
    );
    return this.get(Number(info.lastInsertRowid))!;
  }

  /** A new request to subscribe from an unsubscribed/bounced reader: back to pending, fresh consent. */
  renewConsent(id: number, ip: string | null): void {
    this.renewStmt.run(ip, nowIso(), id);
  }

  /** Pending → active. Returns false if the subscriber was not pending (already confirmed, or gone). */
  activate(id: number, ip: string | null): boolean {
    const at = nowIso();
    return this.activateStmt.run(at, ip, id).changes === 1;
  }

  /** Returns false when there was nothing to change (already unsubscribed). `reason`: who asked. */
  unsubscribe(id: number, reason: 'reader' | 'author' = 'reader'): boolean {
    return this.unsubscribeStmt.run(nowIso(), reason, id).changes === 1;
  }

  /**
   * Any status → active, on the author's word (`subscribers add`): confirmed now if never
   * confirmed, bounces forgiven, and the reader's place in the story kept.
   */
  reactivate(id: number): void {
    this.reactivateStmt.run(nowIso(), id);
  }

  noteNoticeSent(id: number, at = nowIso()): void {
    this.noticeSentStmt.run(at, id);
  }

  /** Counts a hard bounce; marks the subscriber bounced when the limit is reached. Returns true if it was. */
  recordHardBounce(id: number, limit: number): boolean {
    this.bounceCountStmt.run(id);
    return this.bouncedStmt.run(id, limit).changes === 1;
  }

  clearBounces(id: number): void {
    this.clearBouncesStmt.run(id);
  }

  advance(id: number, position: number): void {
    this.advanceStmt.run(position, id);
  }

  /** Saves a reader's calendar choices and the next delivery they imply (null: with the story's runs). */
  setChoices(id: number, choices: ReaderChoices, nextDueAt: string | null): void {
    this.choicesStmt.run({ id, ...choices, nextDueAt });
  }

  /** Moves a reader's next delivery on from `from` (the value the sender read); false when it had changed meanwhile. */
  moveDue(id: number, from: string, to: string | null): boolean {
    return this.moveDueStmt.run(to, id, from).changes === 1;
  }

  /** Gives every active reader on the default calendar who has no next delivery yet this one. */
  armDefaults(at: string): number {
    return this.armStmt.run(at).changes;
  }

  /** Back on the story's calendar (broadcast: a reader at their own pace who caught up). */
  rejoinSchedule(id: number): void {
    this.rejoinStmt.run(id);
  }

  /** Readers whose own delivery time is at or before `now` (a range of the index). */
  countDue(now: string): number {
    return this.dueCount.get(now)!.n;
  }

  /** When the earliest own-calendar delivery falls due, if any reader has one. */
  firstDueAt(): string | null {
    return this.firstDue.get()?.at ?? null;
  }

  /**
   * Active readers whose own delivery time is at or before `now`, earliest first, a page at a
   * time along the index. A reader whose next_due_at moves past `now` meanwhile drops out.
   */
  *iterateDue(now: string, pageSize = 500): Generator<Subscriber> {
    let afterDue = '';
    let afterId = 0;
    for (;;) {
      const rows = this.duePage.all({ now, afterDue, afterId, limit: pageSize });
      for (const r of rows) yield fromRow(r);
      if (rows.length < pageSize) return;
      const last = rows[rows.length - 1]!;
      [afterDue, afterId] = [last.next_due_at!, last.id];
    }
  }

  progress(now: string): ReaderProgress {
    return {
      byPosition: this.positions.all(),
      paused: this.pausedCount.get(now)!.n,
      ownCalendar: this.ownCount.get()!.n,
    };
  }

  markFinished(id: number): boolean {
    return this.finishedStmt.run(nowIso(), id).changes === 1;
  }

  /**
   * Requests to subscribe made before `before`, never confirmed, with no confirmation link
   * still valid at `now`: deleted, or for a former reader, back to unsubscribed. Returns how many of each.
   */
  purgeStalePending(before: string, now: string): { pending: number; lapsed: number } {
    return this.purgeStalePendingTx(before, now);
  }

  /** Deletes the subscriber; their deliveries and tokens go with them (ON DELETE CASCADE). */
  forget(id: number): void {
    this.forgetStmt.run(id);
  }

  countByStatus(): Record<SubscriberStatus, number> {
    const counts = Object.fromEntries(SUBSCRIBER_STATUSES.map((s) => [s, 0])) as Record<SubscriberStatus, number>;
    for (const r of this.byStatus.all()) counts[r.status] = r.n;
    return counts;
  }

  /**
   * Walks subscribers in id order a page at a time (keyset pagination), so a send over a
   * million rows holds one page in memory, and rows added meanwhile are still reached.
   */
  *iterate(
    filter: { status?: SubscriberStatus; maxPosition?: number; minPosition?: number; storyCalendarAt?: string } = {},
    pageSize = 500,
  ): Generator<Subscriber> {
    const where = ['id > @after'];
    if (filter.status) where.push('status = @status');
    if (filter.maxPosition !== undefined) where.push('position <= @maxPosition');
    if (filter.minPosition !== undefined) where.push('position >= @minPosition');
    // On the story's calendar at that instant: no calendar of their own, and not paused.
    if (filter.storyCalendarAt !== undefined)
      where.push('next_due_at IS NULL AND (paused_until_at IS NULL OR paused_until_at <= @storyCalendarAt)');
    const sql = `SELECT * FROM subscribers WHERE ${where.join(' AND ')} ORDER BY id LIMIT @limit`;
    let page = this.pages.get(sql);
    if (!page) this.pages.set(sql, (page = this.db.prepare<Record<string, unknown>, Row>(sql)));
    let after = 0;
    for (;;) {
      const rows = page.all({
        after,
        status: filter.status,
        maxPosition: filter.maxPosition,
        minPosition: filter.minPosition,
        storyCalendarAt: filter.storyCalendarAt,
        limit: pageSize,
      });
      for (const r of rows) yield fromRow(r);
      if (rows.length < pageSize) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  /**
   * Adds imported subscribers as active (the author vouches for their consent), all or
   * nothing, skipping addresses already known. Returns how many were added.
   */
  importActive(emails: Array<{ email: string; createdAt?: string }>, source: string): number {
    const insert = this.importStmt;
    const now = nowIso();
    return this.db.transaction(() => {
      let added = 0;
      for (const e of emails)
        added += insert.run({ email: e.email, at: e.createdAt ?? now, token: newFeedToken(), source }).changes;
      return added;
    })();
  }
}
