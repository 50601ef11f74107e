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

  constructor(private readonly db: DB) {
    this.insertClaim = db.prepare(
      `INSERT INTO deliveries (subscriber_id, installment, status, attempts, run_id, queued_at)
       VALUES (?, ?, 'sending', 1, ?, ?) ON CONFLICT (subscriber_id, installment) DO NOTHING`,
    );
    this.reclaim = db.prepare(
      `UPDATE deliveries SET status = 'sending', attempts = attempts + 1, run_id = ? WHERE subscriber_id = ? AND installment = ? AND status = 'queued'
       RETURNING id, attempts, possible_duplicate`,
    );
    this.sent = db.prepare(`UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, last_error = NULL WHERE id = ? AND status = 'sending'`);
  }

  /**
   * Takes the (subscriber, installment) row for sending. Returns undefined when it is not
   * ours to send: already sent, failed for good, or being sent right now.
   */
  claim(subscriberId: number, installment: number, runId: number | null): { id: number; attempts: number; possibleDuplicate: boolean } | undefined {
    const fresh = this.insertClaim.run(subscriberId, installment, runId, nowIso());
    if (fresh.changes === 1) return { id: Number(fresh.lastInsertRowid), attempts: 1, possibleDuplicate: false };
    const again = this.reclaim.get(runId, subscriberId, installment) as { id: number; attempts: number; possible_duplicate: number } | undefined;
    return again && { id: again.id, attempts: again.attempts, possibleDuplicate: again.possible_duplicate === 1 };
  }

  /** Counts one more attempt on a row we hold (a retry inside the same run). */
  bumpAttempt(id: number, error: string): number {
    const row = this.db.prepare(`UPDATE deliveries SET attempts = attempts + 1, last_error = ? WHERE id = ? RETURNING attempts`).get(error, id) as { attempts: number };
    return row.attempts;
  }

  markSent(id: number, messageId: string): void {
    this.sent.run(messageId, nowIso(), id);
  }

  /** Gives a held row back for a later run (outage, pause). */
  requeue(id: number, error: string): void {
    this.db.prepare(`UPDATE deliveries SET status = 'queued', last_error = ? WHERE id = ?`).run(error, id);
  }

  /** Failed deliveries of a run back to the queue (--retry-failed); returns how many. */
  requeueFailed(runId: number): number {
    return this.db.prepare(`UPDATE deliveries SET status = 'queued' WHERE run_id = ? AND status = 'failed'`).run(runId).changes;
  }

  markFailed(id: number, error: string): void {
    this.db.prepare(`UPDATE deliveries SET status = 'failed', last_error = ? WHERE id = ?`).run(error, id);
  }

  /**
   * Rows a dead process left in `sending`: the message may or may not have left. `resend`
   * queues them again flagged as possible duplicates; `fail` gives up on them.
   */
  recoverInFlight(policy: 'resend' | 'fail'): Delivery[] {
    const rows = this.db.prepare(`SELECT * FROM deliveries WHERE status = 'sending' ORDER BY id`).all() as Row[];
    if (policy === 'resend') {
      this.db.prepare(`UPDATE deliveries SET status = 'queued', possible_duplicate = 1, last_error = 'interrupted while sending' WHERE status = 'sending'`).run();
    } else {
      this.db.prepare(`UPDATE deliveries SET status = 'failed', last_error = 'interrupted while sending; not re-sent (delivery.inFlightPolicy: fail)' WHERE status = 'sending'`).run();
    }
    return rows.map(fromRow);
  }

  get(subscriberId: number, installment: number): Delivery | undefined {
    const row = this.db.prepare('SELECT * FROM deliveries WHERE subscriber_id = ? AND installment = ?').get(subscriberId, installment) as Row | undefined;
    return row && fromRow(row);
  }

  forSubscriber(subscriberId: number): Delivery[] {
    return (this.db.prepare('SELECT * FROM deliveries WHERE subscriber_id = ? ORDER BY installment').all(subscriberId) as Row[]).map(fromRow);
  }

  /** Did this run already deliver something to this subscriber? (paced: one installment per run) */
  sentInRun(subscriberId: number, runId: number): boolean {
    return this.db.prepare(`SELECT 1 FROM deliveries WHERE subscriber_id = ? AND run_id = ? AND status IN ('sent', 'sending')`).get(subscriberId, runId) !== undefined;
  }

  countByStatus(): Record<DeliveryStatus, number> & { possibleDuplicates: number } {
    const counts = { queued: 0, sending: 0, sent: 0, failed: 0, possibleDuplicates: 0 };
    for (const r of this.db.prepare('SELECT status, count(*) AS n FROM deliveries GROUP BY status').all() as Array<{ status: DeliveryStatus; n: number }>) counts[r.status] = r.n;
    counts.possibleDuplicates = (this.db.prepare('SELECT count(*) AS n FROM deliveries WHERE possible_duplicate = 1').get() as { n: number }).n;
    return counts;
  }

  /** Sent messages for this installment, for reports. */
  countSent(installment: number): number {
    return (this.db.prepare(`SELECT count(*) AS n FROM deliveries WHERE installment = ? AND status = 'sent'`).get(installment) as { n: number }).n;
  }
}
