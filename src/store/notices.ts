// The notices ledger: confirmation, welcome and "The End" emails, queued in the same
// transaction as the change that owes them, so an HTTP answer or a crash never loses one.
// A sender leases the rows it takes; a lease that runs out (the sender died) gives the
// row to the next one, which re-sends it under the same Message-ID.
import { nowIso, type DB } from './db.ts';
import { deadHere, thisProcess } from './process.ts';

export type NoticeKind = 'confirm' | 'welcome' | 'the-end';

export type NoticeStatus = 'queued' | 'sending' | 'sent' | 'failed';

export interface Notice {
  id: number;
  subscriberId: number;
  kind: NoticeKind;
  status: NoticeStatus;
  attempts: number;
  lastError: string | null;
  confirmUrl: string | null;
  messageId: string;
  createdAt: string;
  nextAttemptAt: string;
  sentAt: string | null;
}

interface Row {
  id: number;
  subscriber_id: number;
  kind: NoticeKind;
  status: NoticeStatus;
  attempts: number;
  last_error: string | null;
  confirm_url: string | null;
  message_id: string;
  created_at: string;
  next_attempt_at: string;
  sent_at: string | null;
}

const fromRow = (r: Row): Notice => ({
  id: r.id,
  subscriberId: r.subscriber_id,
  kind: r.kind,
  status: r.status,
  attempts: r.attempts,
  lastError: r.last_error,
  confirmUrl: r.confirm_url,
  messageId: r.message_id,
  createdAt: r.created_at,
  nextAttemptAt: r.next_attempt_at,
  sentAt: r.sent_at,
});

export class NoticeStore {
  private readonly insert;
  private readonly claim;
  private readonly sent;
  private readonly later;
  private readonly failed;
  private readonly latest;
  private readonly nextDue;
  private readonly counts;
  private readonly leaseOwners;
  private readonly release;

  constructor(db: DB) {
    // "The End" is owed once per reader: a second insert is ignored (unique index).
    this.insert = db.prepare<[number, NoticeKind, string | null, string, string, string]>(
      `INSERT INTO notices (subscriber_id, kind, status, confirm_url, message_id, created_at, next_attempt_at)
       VALUES (?, ?, 'queued', ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    this.claim = db.prepare<[string, string, string, string, number], Row>(
      `UPDATE notices SET status = 'sending', lease_until = ?, lease_owner = ?, attempts = attempts + 1
       WHERE id IN (SELECT id FROM notices
                    WHERE (status = 'queued' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_until <= ?)
                    ORDER BY next_attempt_at, id LIMIT ?)
       RETURNING *`,
    );
    // Each settles only the claim it was given (`attempts` counts claims): a sender whose
    // lease ran out while its email was still on the wire must not undo the next sender's work.
    const mine = `WHERE id = ? AND status = 'sending' AND attempts = ?`;
    this.sent = db.prepare<[string, number, number]>(
      `UPDATE notices SET status = 'sent', sent_at = ?, confirm_url = NULL, lease_until = NULL, last_error = NULL
       ${mine}`,
    );
    this.later = db.prepare<[string, string, number, number]>(
      `UPDATE notices SET status = 'queued', last_error = ?, next_attempt_at = ?, lease_until = NULL ${mine}`,
    );
    this.failed = db.prepare<[string, number, number]>(
      `UPDATE notices SET status = 'failed', last_error = ?, confirm_url = NULL, lease_until = NULL ${mine}`,
    );
    this.latest = db.prepare<[number], Row>(`SELECT * FROM notices WHERE subscriber_id = ? ORDER BY id DESC LIMIT 1`);
    this.nextDue = db.prepare<[], { at: string | null }>(
      `SELECT min(CASE status WHEN 'queued' THEN next_attempt_at ELSE lease_until END) AS at FROM notices
       WHERE status IN ('queued', 'sending')`,
    );
    this.leaseOwners = db.prepare<[], { owner: string }>(
      `SELECT DISTINCT lease_owner AS owner FROM notices WHERE status = 'sending' AND lease_owner IS NOT NULL`,
    );
    this.release = db.prepare<[string]>(
      `UPDATE notices SET status = 'queued', lease_until = NULL, lease_owner = NULL
       WHERE status = 'sending' AND lease_owner = ?`,
    );
    this.counts = db.prepare<[], { status: NoticeStatus; n: number }>(
      `SELECT status, count(*) AS n FROM notices GROUP BY status`,
    );
  }

  /** Queues a notice due now; false when it was owed once only and is queued already. */
  enqueue(n: { subscriberId: number; kind: NoticeKind; messageId: string; confirmUrl?: string; at?: string }): boolean {
    const at = n.at ?? nowIso();
    return this.insert.run(n.subscriberId, n.kind, n.confirmUrl ?? null, n.messageId, at, at).changes === 1;
  }

  /** Takes up to `limit` due notices (and those whose sender's lease ran out) for `leaseMs`. */
  claimDue(now: Date, leaseMs: number, limit: number): Notice[] {
    const iso = now.toISOString();
    return this.claim.all(new Date(now.getTime() + leaseMs).toISOString(), thisProcess(), iso, iso, limit).map(fromRow);
  }

  /** Gives back at once the rows whose sender died on this machine (a crash): no need to wait out the lease. */
  reclaimAbandoned(): number {
    let n = 0;
    for (const { owner } of this.leaseOwners.all()) if (deadHere(owner)) n += this.release.run(owner).changes;
    return n;
  }

  /** Settles claim `n` (its id and attempts) as sent; false when that claim was no longer this sender's. */
  markSent(n: Pick<Notice, 'id' | 'attempts'>, at = nowIso()): boolean {
    return this.sent.run(at, n.id, n.attempts).changes === 1;
  }

  retryAt(n: Pick<Notice, 'id' | 'attempts'>, error: string, at: Date): boolean {
    return this.later.run(error, at.toISOString(), n.id, n.attempts).changes === 1;
  }

  markFailed(n: Pick<Notice, 'id' | 'attempts'>, error: string): boolean {
    return this.failed.run(error, n.id, n.attempts).changes === 1;
  }

  latestFor(subscriberId: number): Notice | undefined {
    const row = this.latest.get(subscriberId);
    return row && fromRow(row);
  }

  /** When the next queued notice falls due (or a lease runs out), for the sender's timer. */
  nextDueAt(): Date | null {
    const at = this.nextDue.get()?.at;
    return at ? new Date(at) : null;
  }

  countByStatus(): Record<NoticeStatus, number> {
    const out: Record<NoticeStatus, number> = { queued: 0, sending: 0, sent: 0, failed: 0 };
    for (const r of this.counts.all()) out[r.status] = r.n;
    return out;
  }
}
