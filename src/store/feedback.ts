// What relays told us after accepting a message (bounces, spam complaints), and the
// subscriber changes they cause. One report is applied in one transaction (`atomically`).
import { nowIso, type DB } from './db.ts';

export type FeedbackType = 'bounce' | 'soft-bounce' | 'complaint';

export interface FeedbackRecord {
  provider: string;
  /** The provider's id for the report: a repeat of the same id and address is not recorded again. */
  eventId: string;
  type: FeedbackType;
  email: string;
  /** Normalised `<…>` form, as stored in deliveries.message_id. */
  messageId: string | null;
  subscriberId: number | null;
  deliveryId: number | null;
  detail: string | null;
}

export class FeedbackStore {
  private readonly deliveryStmt;
  private readonly subscriberStmt;
  private readonly insertStmt;
  private readonly bounceStmt;
  private readonly complaintStmt;
  private readonly countStmt;

  constructor(private readonly db: DB) {
    this.deliveryStmt = db.prepare(
      'SELECT id, subscriber_id AS subscriberId FROM deliveries WHERE message_id = ? ORDER BY id LIMIT 1',
    );
    this.subscriberStmt = db.prepare('SELECT id FROM subscribers WHERE email = ?').pluck();
    this.insertStmt = db.prepare(
      `INSERT INTO feedback
         (received_at, provider, event_id, type, email, message_id, subscriber_id, delivery_id, detail)
       VALUES (@at, @provider, @eventId, @type, @email, @messageId, @subscriberId, @deliveryId, @detail)
       ON CONFLICT (provider, event_id, email) DO NOTHING`,
    );
    // A reader who already left (unsubscribed) is not mailed either way; their reason is kept.
    this.bounceStmt = db.prepare(
      `UPDATE subscribers SET status = 'bounced', status_reason = 'bounce'
       WHERE id = ? AND status IN ('pending', 'active')`,
    );
    this.complaintStmt = db.prepare(
      `UPDATE subscribers SET status = 'unsubscribed', status_reason = 'complaint',
         unsubscribed_at = CASE WHEN status = 'unsubscribed' THEN coalesce(unsubscribed_at, @at) ELSE @at END
       WHERE id = @id AND (status != 'unsubscribed' OR status_reason IS NOT 'complaint')`,
    );
    this.countStmt = db.prepare('SELECT type, count(*) AS n FROM feedback GROUP BY type');
  }

  /** Reports received, by type (for status). */
  countByType(): Record<FeedbackType, number> {
    const out: Record<FeedbackType, number> = { bounce: 0, 'soft-bounce': 0, complaint: 0 };
    for (const r of this.countStmt.all() as Array<{ type: FeedbackType; n: number }>) out[r.type] = r.n;
    return out;
  }

  atomically<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  deliveryByMessageId(messageId: string): { id: number; subscriberId: number } | undefined {
    return this.deliveryStmt.get(messageId) as { id: number; subscriberId: number } | undefined;
  }

  /** Case-insensitive: subscribers.email is NOCASE. */
  subscriberIdByEmail(email: string): number | undefined {
    return this.subscriberStmt.get(email) as number | undefined;
  }

  /** False when this report was recorded before (a relay's retry). */
  insert(record: FeedbackRecord, at = nowIso()): boolean {
    return this.insertStmt.run({ ...record, at }).changes === 1;
  }

  /** True when the subscriber was mailable and now is not. */
  markBounced(subscriberId: number): boolean {
    return this.bounceStmt.run(subscriberId).changes === 1;
  }

  /** True when something changed: unsubscribed now, or an earlier unsubscribe now known to be a complaint. */
  markComplained(subscriberId: number, at = nowIso()): boolean {
    return this.complaintStmt.run({ id: subscriberId, at }).changes === 1;
  }
}
