import { createHash, randomBytes } from 'node:crypto';
import { nowIso, type DB } from './db.ts';

export type TokenCheck = { ok: true; subscriberId: number } | { ok: false; reason: 'unknown' | 'used' | 'expired' };

// Only a hash is stored: a leaked database does not hand out working confirmation links.
const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

// An expired token is kept this long so a late click is told "expired, subscribe again"
// rather than "not valid"; after that it only holds a stranger's request.
const EXPIRED_TOKEN_GRACE_MS = 86_400_000;

/** Single-use, expiring confirmation tokens (double opt-in). */
export class TokenStore {
  private readonly insertStmt;
  private readonly byHashStmt;
  private readonly consumeStmt;
  private readonly purgeStmt;

  constructor(db: DB) {
    this.insertStmt = db.prepare(
      `INSERT INTO tokens (hash, subscriber_id, purpose, expires_at) VALUES (?, ?, 'confirm', ?)`,
    );
    this.byHashStmt = db.prepare('SELECT subscriber_id, expires_at, used_at FROM tokens WHERE hash = ?');
    this.consumeStmt = db.prepare('UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL');
    this.purgeStmt = db.prepare('DELETE FROM tokens WHERE expires_at < ?');
  }

  issue(subscriberId: number, ttlHours: number): string {
    const token = randomBytes(24).toString('base64url');
    const expires = new Date(Date.now() + ttlHours * 3_600_000).toISOString();
    this.insertStmt.run(hashToken(token), subscriberId, expires);
    return token;
  }

  check(token: string): TokenCheck {
    const row = this.byHashStmt.get(hashToken(token)) as
      { subscriber_id: number; expires_at: string; used_at: string | null } | undefined;
    if (!row) return { ok: false, reason: 'unknown' };
    if (row.used_at) return { ok: false, reason: 'used' };
    if (row.expires_at <= nowIso()) return { ok: false, reason: 'expired' };
    return { ok: true, subscriberId: row.subscriber_id };
  }

  /** Spends the token; false if someone spent it first (two clicks racing). */
  consume(token: string): boolean {
    return this.consumeStmt.run(nowIso(), hashToken(token)).changes === 1;
  }

  /** Deletes tokens, used or not, that expired more than a day before `now`; returns how many. */
  purgeExpired(now: Date): number {
    return this.purgeStmt.run(new Date(now.getTime() - EXPIRED_TOKEN_GRACE_MS).toISOString()).changes;
  }
}
