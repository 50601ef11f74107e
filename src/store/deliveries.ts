// The exactly-once ledger: one row per (subscriber, installment), claimed as `sending`
// before the SMTP transaction and marked `sent` right after. A crash can only leave rows
// in `sending`; `recoverInFlight` decides what they become.
import { nowIso, type DB } from './db.ts';

export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'failed';

export interface Delivery {
  id: number;
  subscriberId: number;
  installment: number;
  status: DeliveryStatus;
  attempts: number;
  lastError: string | null;
  messageId: string | null;
  runId: number | null;
  possibleDuplicate: boolean;
  sentAt: string | null;
}

interface Row {
  id: number;
  subscriber_id: number;
  installment: number;
  status: DeliveryStatus;
  attempts: number;
  last_error: string | null;
  message_id: string | null;
  run_id: number | null;
  possible_duplicate: number;
  sent_at: string | null;
}

const fromRow = (r: Row): Delivery => ({
  id: r.id,
  subscriberId: r.subscriber_id,
  installment: r.installment,
  status: r.status,
  attempts: r.attempts,
  lastError: r.last_error,
  messageId: r.message_id,
  runId: r.run_id,
  possibleDuplicate: r.possible_duplicate === 1,
  sentAt: r.sent_at,
});

export class DeliveryStore {
  private readonly insertClaim;
  private readonly reclaim;
  private readonly sent;
  private readonly bump;
  private readonly toQueue;
  private readonly failedAgain;
  private readonly toFailed;
  private readonly failedBack;
  private readonly queuedIn;
  private readonly inFlight;
  private readonly resendInFlight;
  private readonly failInFlight;
  private readonly one;
  private readonly ofSubscriber;
  private readonly inRun;
  private readonly byStatus;
  private readonly duplicates;
  private readonly sentOf;

  constructor(db: DB) {
    this.insertClaim = db.prepare<[number, number, number | null, string]>(
      `INSERT INTO deliveries (subscriber_id, installment, status, attempts, run_id, queued_at)
       VALUES (?, ?, 'sending', 1, ?, ?) ON CONFLICT (subscriber_id, installment) DO NOTHING`,
    );
    this.reclaim = db.prepare<
      [number | null, number, number],
      { id: number; attempts: number; possible_duplicate: number }
    >(
      `UPDATE deliveries SET status = 'sending', attempts = attempts + 1, run_id = ?
       WHERE subscriber_id = ? AND installment = ? AND status = 'queued'
       RETURNING id, attempts, possible_duplicate`,
    );
    this.sent = db.prepare<[string, string, number]>(
      `UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, last_error = NULL
       WHERE id = ? AND status = 'sending'`,
    );
    this.bump = db.prepare<[string, number], { attempts: number }>(
      `UPDATE deliveries SET attempts = attempts + 1, last_error = ? WHERE id = ? RETURNING attempts`,
    );
    // Only rows this sender holds (`sending`): one frozen past the lock's staleness must not
    // undo what the sender that took over has done since.
    this.toQueue = db.prepare<[string, number]>(
      `UPDATE deliveries SET status = 'queued', last_error = ? WHERE id = ? AND status = 'sending'`,
    );
    this.failedAgain = db.prepare<[number]>(
      `UPDATE deliveries SET status = 'queued' WHERE run_id = ? AND status = 'failed'`,
    );
    this.toFailed = db.prepare<[string, number]>(
      `UPDATE deliveries SET status = 'failed', last_error = ? WHERE id = ? AND status = 'sending'`,
    );
    this.queuedIn = db.prepare<[number], { subscriberId: number; installment: number }>(
      `SELECT subscriber_id AS subscriberId, installment FROM deliveries
       WHERE run_id = ? AND status = 'queued' ORDER BY id`,
    );
    this.failedBack = db.prepare<[string, number]>(
      `UPDATE deliveries SET status = 'queued', last_error = ? WHERE id = ? AND status = 'failed'`,
    );
    this.inFlight = db.prepare<[], Row>(`SELECT * FROM deliveries WHERE status = 'sending' ORDER BY id`);
    this.resendInFlight = db.prepare(
      `UPDATE deliveries SET status = 'queued', possible_duplicate = 1, last_error = 'interrupted while sending'
       WHERE status = 'sending'`,
    );
    this.failInFlight = db.prepare(
      `UPDATE deliveries
       SET status = 'failed', last_error = 'interrupted while sending; not re-sent (delivery.inFlightPolicy: fail)'
       WHERE status = 'sending'`,
    );
    this.one = db.prepare<[number, number], Row>(
      'SELECT * FROM deliveries WHERE subscriber_id = ? AND installment = ?',
    );
    this.ofSubscriber = db.prepare<[number], Row>(
      'SELECT * FROM deliveries WHERE subscriber_id = ? ORDER BY installment',
    );
    this.inRun = db.prepare<[number, number]>(
      `SELECT 1 FROM deliveries WHERE subscriber_id = ? AND run_id = ? AND status IN ('sent', 'sending')`,
    );
    this.byStatus = db.prepare<[], { status: DeliveryStatus; n: number }>(
      'SELECT status, count(*) AS n FROM deliveries GROUP BY status',
    );
    this.duplicates = db.prepare<[], number>('SELECT count(*) FROM deliveries WHERE possible_duplicate = 1').pluck();
    this.sentOf = db
      .prepare<[number], number>(`SELECT count(*) FROM deliveries WHERE installment = ? AND status = 'sent'`)
      .pluck();
  }

  /**
   * Takes the (subscriber, installment) row for sending. Returns undefined when it is not
   * ours to send: already sent, failed for good, or being sent right now.
   */
  claim(
    subscriberId: number,
    installment: number,
    runId: number | null,
  ): { id: number; attempts: number; possibleDuplicate: boolean } | undefined {
    const fresh = this.insertClaim.run(subscriberId, installment, runId, nowIso());
    if (fresh.changes === 1) return { id: Number(fresh.lastInsertRowid), attempts: 1, possibleDuplicate: false };
    const again = this.reclaim.get(runId, subscriberId, installment);
    return again && { id: again.id, attempts: again.attempts, possibleDuplicate: again.possible_duplicate === 1 };
  }

  /** Counts one more attempt on a row we hold (a retry inside the same run). */
  bumpAttempt(id: number, error: string): number {
    return this.bump.get(error, id)!.attempts;
  }

  markSent(id: number, messageId: string): void {
    this.sent.run(messageId, nowIso(), id);
  }

  /** Gives a held row back for a later run (outage, pause). */
  requeue(id: number, error: string): void {
    this.toQueue.run(error, id);
  }

  /** The deliveries of a run waiting in the queue, in order (what --retry-failed sends). */
  queuedOfRun(runId: number): Array<{ subscriberId: number; installment: number }> {
    return this.queuedIn.all(runId);
  }

  /** Failed deliveries of a run back to the queue (--retry-failed); returns how many. */
  requeueFailed(runId: number): number {
    return this.failedAgain.run(runId).changes;
  }

  /** A failed row back to the queue (refusals the breaker judged the relay's, not the readers'). */
  requeueFailedRow(id: number, error: string): void {
    this.failedBack.run(error, id);
  }

  markFailed(id: number, error: string): void {
    this.toFailed.run(error, id);
  }

  /**
   * Rows a dead process left in `sending`: the message may or may not have left. `resend`
   * queues them again flagged as possible duplicates; `fail` gives up on them.
   */
  recoverInFlight(policy: 'resend' | 'fail'): Delivery[] {
    const rows = this.inFlight.all();
    (policy === 'resend' ? this.resendInFlight : this.failInFlight).run();
    return rows.map(fromRow);
  }

  get(subscriberId: number, installment: number): Delivery | undefined {
    const row = this.one.get(subscriberId, installment);
    return row && fromRow(row);
  }

  forSubscriber(subscriberId: number): Delivery[] {
    return this.ofSubscriber.all(subscriberId).map(fromRow);
  }

  /** Did this run already deliver something to this subscriber? (paced: one installment per run) */
  sentInRun(subscriberId: number, runId: number): boolean {
    return this.inRun.get(subscriberId, runId) !== undefined;
  }

  countByStatus(): Record<DeliveryStatus, number> & { possibleDuplicates: number } {
    const counts = { queued: 0, sending: 0, sent: 0, failed: 0, possibleDuplicates: 0 };
    for (const r of this.byStatus.all()) counts[r.status] = r.n;
    counts.possibleDuplicates = this.duplicates.get()!;
    return counts;
  }

  /** Sent messages for this installment, for reports. */
  countSent(installment: number): number {
    return this.sentOf.get(installment)!;
  }
}
