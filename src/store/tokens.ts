import { createHash, randomBytes } from 'node:crypto';
import { nowIso, type DB } from './db.ts';

export type TokenCheck = { ok: true; subscriberId: number } | { ok: false; reason: 'unknown' | 'used' | 'expired' };

// Only a hash is stored: a leaked database does not hand out working confirmation links.
const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Single-use, expiring confirmation tokens (double opt-in). */
export class TokenStore {
  constructor(private readonly db: DB) {}

  issue(subscriberId: number, ttlHours: number): string {
    const token = randomBytes(24).toString('base64url');
    const expires = new Date(Date.now() + ttlHours * 3_600_000).toISOString();
    this.db.prepare(`INSERT INTO tokens (hash, subscriber_id, purpose, expires_at) VALUES (?, ?, 'confirm', ?)`).run(hashToken(token), subscriberId, expires);
    return token;
  }

  check(token: string): TokenCheck {
    const row = this.db.prepare('SELECT subscriber_id, expires_at, used_at FROM tokens WHERE hash = ?').get(hashToken(token)) as
      | { subscriber_id: number; expires_at: string; used_at: string | null }
      | undefined;
    if (!row) return { ok: false, reason: 'unknown' };
    if (row.used_at) return { ok: false, reason: 'used' };
    if (row.expires_at <= nowIso()) return { ok: false, reason: 'expired' };
    return { ok: true, subscriberId: row.subscriber_id };
  }

  /** Spends the token; false if someone spent it first (two clicks racing). */
  consume(token: string): boolean {
    return this.db.prepare('UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL').run(nowIso(), hashToken(token)).changes === 1;
  }

  /** Test and admin aid: make a subscriber's outstanding tokens expire now. */
  expireFor(subscriberId: number): void {
    this.db.prepare('UPDATE tokens SET expires_at = ? WHERE subscriber_id = ? AND used_at IS NULL').run(nowIso(), subscriberId);
  }

  purgeExpired(): number {
    return this.db.prepare('DELETE FROM tokens WHERE expires_at < ?').run(new Date(Date.now() - 7 * 86_400_000).toISOString()).changes;
  }
}
